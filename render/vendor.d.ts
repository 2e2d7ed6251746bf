// Types for the stackgl packages the render server uses, which ship none.

declare module 'gl' {
  function createGL(
    width: number,
    height: number,
    options?: { preserveDrawingBuffer?: boolean; antialias?: boolean; depth?: boolean },
  ): (WebGLRenderingContext & { getExtension(name: 'STACKGL_destroy_context'): { destroy(): void } | null }) | null;
  export default createGL;
}

declare module 'primitive-torus' {
  type Vec3 = [number, number, number];
  function createTorusMesh(options?: {
    majorRadius?: number;
    minorRadius?: number;
    majorSegments?: number;
    minorSegments?: number;
  }): { positions: Vec3[]; cells: Vec3[]; normals: Vec3[]; uvs: [number, number][] };
  export default createTorusMesh;
}

declare module 'gl-mat4' {
  type Mat4 = Float32Array | number[];
  const mat4: {
    create(): Float32Array;
    identity<T extends Mat4>(out: T): T;
    perspective<T extends Mat4>(out: T, fovy: number, aspect: number, near: number, far: number): T;
    lookAt<T extends Mat4>(out: T, eye: number[], center: number[], up: number[]): T;
    rotateX<T extends Mat4>(out: T, a: Mat4, rad: number): T;
    rotateY<T extends Mat4>(out: T, a: Mat4, rad: number): T;
    invert<T extends Mat4>(out: T, a: Mat4): T | null;
    transpose<T extends Mat4>(out: T, a: Mat4): T;
  };
  export default mat4;
}

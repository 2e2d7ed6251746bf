// The scene: a lit torus turning about two axes, seen by a camera orbiting it. Draw commands are
// declared once, as data; the per-frame pose and camera come in as props, and the camera is a
// scope command wrapping the draw.

import type { Regl } from 'regl';
import createTorusMesh from 'primitive-torus';
import mat4 from 'gl-mat4';
import { DEFAULT_CAMERA, type Camera } from '../common/protocol.ts';

export interface Pose {
  /** Rotation about the x axis, radians. */
  x: number;
  /** Rotation about the y axis, radians. */
  y: number;
}

/** How fast the torus turns, radians per second about each axis. */
export const SPIN = { x: 0.7, y: 1.1 } as const;

/** The pose after `seconds` of turning; `spin` scales the speed (0 holds the torus still). */
export function poseAt(seconds: number, spin = 1): Pose {
  return { x: seconds * SPIN.x * spin, y: seconds * SPIN.y * spin };
}

/** Where an orbiting camera stands: `distance` from the centre, turned by yaw, raised by pitch. */
export function eyeOf({ yaw, pitch, distance }: Camera): [number, number, number] {
  return [distance * Math.cos(pitch) * Math.sin(yaw), distance * Math.sin(pitch), distance * Math.cos(pitch) * Math.cos(yaw)];
}

const VERT = `
precision mediump float;
attribute vec3 position, normal;
uniform mat4 projection, view, model, normalMatrix;
varying vec3 vNormal, vPosition;
void main() {
  vec4 world = model * vec4(position, 1.0);
  vPosition = world.xyz;
  vNormal = normalize((normalMatrix * vec4(normal, 0.0)).xyz);
  gl_Position = projection * view * world;
}`;

// Blinn-Phong: ambient, diffuse and specular from one white light, seen from the camera.
const FRAG = `
precision mediump float;
uniform vec3 color, lightPosition, eye;
varying vec3 vNormal, vPosition;
void main() {
  vec3 n = normalize(vNormal);
  vec3 l = normalize(lightPosition - vPosition);
  vec3 v = normalize(eye - vPosition);
  vec3 h = normalize(l + v);
  float diffuse = max(dot(n, l), 0.0);
  float specular = diffuse > 0.0 ? pow(max(dot(n, h), 0.0), 48.0) : 0.0;
  vec3 lit = color * (0.15 + 0.8 * diffuse) + vec3(0.9) * specular;
  gl_FragColor = vec4(lit, 1.0);
}`;

export const BACKGROUND: [number, number, number, number] = [0.07, 0.08, 0.1, 1];

export function createScene(regl: Regl) {
  const torus = createTorusMesh({ majorRadius: 1, minorRadius: 0.4, majorSegments: 96, minorSegments: 48 });
  const projection = mat4.create();
  const view = mat4.create();

  const camera = regl({
    context: {
      projection: ({ viewportWidth, viewportHeight }) =>
        mat4.perspective(projection, Math.PI / 4, viewportWidth / viewportHeight, 0.1, 100),
      view: (_context, props: Camera) => mat4.lookAt(view, eyeOf(props), [0, 0, 0], [0, 1, 0]),
      eye: (_context, props: Camera) => eyeOf(props),
    },
    uniforms: {
      projection: regl.context('projection' as never),
      view: regl.context('view' as never),
      eye: regl.context('eye' as never),
    },
  });

  const model = mat4.create();
  const normalMatrix = mat4.create();
  const modelOf = (pose: Pose) => mat4.rotateY(model, mat4.rotateX(model, mat4.identity(model), pose.x), pose.y);

  const drawTorus = regl({
    vert: VERT,
    frag: FRAG,
    attributes: { position: torus.positions, normal: torus.normals },
    elements: torus.cells,
    uniforms: {
      model: (_context, props: Pose) => modelOf(props),
      // The inverse transpose keeps normals perpendicular under any model transform.
      normalMatrix: (_context, props: Pose) => mat4.transpose(normalMatrix, mat4.invert(normalMatrix, modelOf(props))!),
      color: [0.85, 0.35, 0.15],
      lightPosition: [3, 4, 5],
    },
    depth: { enable: true },
  });

  return function draw(pose: Pose, view: Camera = DEFAULT_CAMERA): void {
    regl.clear({ color: BACKGROUND, depth: 1 });
    camera(view, () => drawTorus(pose));
  };
}

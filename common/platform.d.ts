// The few host APIs the runtime-free layer relies on, which browsers, Node and Bun all provide:
// WHATWG URL, TextEncoder/TextDecoder and timers. Declared here, narrowly, so that nothing else of
// any one runtime can creep into common/ unnoticed (each program's project has the full types).

declare class URL {
  constructor(url: string, base?: string | URL);
  readonly protocol: string;
  readonly host: string;
  readonly hostname: string;
  readonly port: string;
  readonly pathname: string;
  readonly search: string;
  readonly searchParams: { get(name: string): string | null; set(name: string, value: string): void; has(name: string): boolean };
  readonly username: string;
  readonly password: string;
  readonly origin: string;
  href: string;
  toString(): string;
}

declare class TextEncoder {
  encode(input?: string): Uint8Array;
}

declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}

type TimerHandle = { readonly __timer: unique symbol } | number;
declare function setTimeout(callback: () => void, ms?: number): TimerHandle;
declare function clearTimeout(handle: TimerHandle | undefined): void;

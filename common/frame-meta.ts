// Each frame is one complete JPEG, so that the tutorial's page can show it as it is. What a
// richer page wants to know about the frame (its number, when it was captured, which camera input
// it shows) rides inside the image as a JPEG comment segment (COM, 0xFFFE) right after the
// start-of-image marker, which every decoder skips.

export interface FrameMeta {
  /** Frame number since the client connected. */
  seq: number;
  /** When the frame was drawn, in the render server's clock (ms since the epoch). */
  capturedAt: number;
  /** The seq of the last camera message applied to this frame (-1 before any). */
  inputSeq: number;
  /** The frames per second the render server is achieving. */
  fps: number;
}

const SOI = [0xff, 0xd8];
const COM = [0xff, 0xfe];
const MAX_SEGMENT = 0xffff - 2;

export function withFrameMeta(jpeg: Uint8Array, meta: FrameMeta): Uint8Array {
  if (jpeg[0] !== SOI[0] || jpeg[1] !== SOI[1]) throw new Error('not a JPEG: no start-of-image marker');
  const body = new TextEncoder().encode(JSON.stringify(meta));
  if (body.length > MAX_SEGMENT) throw new Error('frame metadata too large for one JPEG segment');
  const out = new Uint8Array(jpeg.length + 4 + body.length);
  out.set(SOI, 0);
  out.set(COM, 2);
  // The segment length counts its own two bytes.
  out[4] = (body.length + 2) >> 8;
  out[5] = (body.length + 2) & 0xff;
  out.set(body, 6);
  out.set(jpeg.subarray(2), 6 + body.length);
  return out;
}

/** The metadata of a frame made by withFrameMeta, or null for any other JPEG. */
export function readFrameMeta(bytes: Uint8Array): FrameMeta | null {
  if (bytes.length < 6 || bytes[0] !== SOI[0] || bytes[1] !== SOI[1] || bytes[2] !== COM[0] || bytes[3] !== COM[1]) return null;
  const length = (bytes[4] << 8) | bytes[5];
  if (length < 2 || 4 + length > bytes.length) return null;
  try {
    const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(6, 4 + length)));
    return typeof meta?.seq === 'number' && typeof meta?.capturedAt === 'number' ? (meta as FrameMeta) : null;
  } catch {
    return null;
  }
}

// JPEG encoding of RGBA frames with sharp (libvips; the work runs off the JS thread).

import sharp from 'sharp';

// One frame encodes at a time per server, and libvips' own threads would only contend with the
// other render servers on this machine for the same cores.
sharp.concurrency(1);
sharp.cache(false);

export async function encodeJpeg(rgba: Buffer, size: number, quality: number): Promise<Buffer> {
  return sharp(rgba, { raw: { width: size, height: size, channels: 4 } })
    .removeAlpha()
    .jpeg({ quality, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

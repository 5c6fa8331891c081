/** The binary a test asks for: reproducible on both sides, so the receiver can report its hash. */
export function patternBytes(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7) & 0xff;
  return bytes;
}

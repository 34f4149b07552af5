/**
 * The binary convention: bytes travel as the update's data written as a
 * base64 `data:` URL with the type application/octet-stream.
 */

/** What a binary update's data starts with; the base64 text follows. */
export const BINARY_PREFIX = 'data:application/octet-stream;base64,';

/** `bytes` as the data of a binary update. */
export function encodeBinary(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return BINARY_PREFIX + btoa(text);
}

/** The bytes of a binary update's data, or the data itself when it is not one (or not valid base64). */
export function decodeData(data: string): string | Uint8Array {
  if (!data.startsWith(BINARY_PREFIX)) return data;
  try {
    const text = atob(data.slice(BINARY_PREFIX.length));
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  } catch {
    return data;
  }
}

/**
 * An expected error given by some of its fields, for `toThrow`. Errors made
 * by the addon belong to Node's realm rather than jest's, so they are matched
 * by their fields (name, code, errno, syscall), never by class.
 */
export function errorLike(fields: Record<string, unknown>): Error {
  // toThrow accepts an asymmetric matcher, which @types/jest does not list.
  return expect.objectContaining(fields) as Error;
}

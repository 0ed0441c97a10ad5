/**
 * The one way the description tests check a refusal: `make` throws a
 * DeviceDescriptionError naming `field`, with a message matching `message`.
 */
import { DeviceDescriptionError } from '../../lib/errors';

/** Runs `make`, expects the refusal, and returns the error for more checks. */
export function descriptionError(make: () => unknown, field: string, message?: RegExp): DeviceDescriptionError {
  let caught: unknown;
  try {
    make();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(DeviceDescriptionError);
  const err = caught as DeviceDescriptionError;
  expect(err.field).toBe(field);
  if (message !== undefined) {
    expect(err.message).toMatch(message);
  }
  return err;
}

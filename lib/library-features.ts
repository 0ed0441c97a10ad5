/**
 * What needs the package's own C library: the answers of its extension
 * header (`libvfio-user-ext.h`), which a system libvfio-user lacks. The one
 * place that says so.
 *
 * @packageDocumentation
 */
import { LibraryFeatureError } from './errors';
import { native } from './native';

/** Features that only our library provides. */
export type LibraryFeature =
  | 'interrupt mode'
  | 'interrupt mask and pending state'
  | 'MSI-X state in migration'
  | 'ERR and REQ interrupts';

/** Whether the addon is built with our library's extensions. */
export const hasLibraryExtensions: boolean = native.libraryExtensions;

/** @throws LibraryFeatureError when the addon is built against a system library */
export function requireLibraryExtensions(feature: LibraryFeature): void {
  if (!hasLibraryExtensions) {
    throw new LibraryFeatureError(feature);
  }
}

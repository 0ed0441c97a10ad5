/** A problem of the `vfio-user` command worth a one-line message and an exit status, not a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

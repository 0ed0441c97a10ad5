/** A command that fails with an NVMe status: what the command handlers throw and the queue engine completes with. */
export class CommandError extends Error {
  /**
   * @param status - Status Field (SCT << 8 | SC, DNR included when set)
   * @param why - for the device's log, never sent to the host
   */
  constructor(
    readonly status: number,
    why: string,
  ) {
    super(why);
  }
}

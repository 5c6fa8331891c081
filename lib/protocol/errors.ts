export type WireErrorCode =
  | "BAD_REQUEST"
  | "NOT_FOUND"
  | "NO_RECEIVER"
  | "REFUSED"
  | "TOO_LARGE"
  | "TIMEOUT"
  | "UNREACHABLE"
  | "UNKNOWN_PEER"
  | "IDENTITY_MISMATCH"
  | "STREAM_ABORTED"
  | "REMOTE_ERROR"
  | "CLOSED"
  /** This device's disk (or the peer's, status 507) is full: nothing was written; it resumes once space is freed. */
  | "STORAGE_FULL"
  /** The six digits confirmed for a pairing are not the ones this device derived. */
  | "PAIRING_MISMATCH";

const STATUS_BY_CODE: Partial<Record<WireErrorCode, number>> = {
  BAD_REQUEST: 400,
  REFUSED: 403,
  NOT_FOUND: 404,
  NO_RECEIVER: 404,
  TOO_LARGE: 413,
  TIMEOUT: 408,
  STREAM_ABORTED: 400,
  STORAGE_FULL: 507,
};

/** Every failure the wire reports carries a code a flow can switch on and a sentence a person can read. */
export class WireError extends Error {
  constructor(readonly code: WireErrorCode, message: string, readonly status?: number) {
    super(message);
    this.name = "WireError";
  }

  get httpStatus(): number {
    return this.status ?? STATUS_BY_CODE[this.code] ?? 500;
  }
}

/** The reverse of {@link WireError.httpStatus}, for errors that come back over the wire. */
export function wireErrorFromResponse(status: number, code: unknown, reason: unknown): WireError {
  const message = typeof reason === "string" && reason ? reason : `the peer answered ${status}`;
  const known = typeof code === "string" && code in STATUS_BY_CODE ? (code as WireErrorCode) : undefined;
  return new WireError(known ?? (status === 403 ? "REFUSED" : status === 507 ? "STORAGE_FULL" : "REMOTE_ERROR"), message, status);
}

import { WireError } from "../protocol/errors";

export type PayloadKind = "string" | "buffer" | "json";

const CONTENT_TYPES: Record<PayloadKind, string> = {
  string: "text/plain; charset=utf-8",
  buffer: "application/octet-stream",
  json: "application/json",
};

/** Turns a msg.payload into bytes plus a content type that lets the receiver rebuild the same JS type. */
export function encodePayload(payload: unknown): { body: Buffer; contentType: string } {
  if (Buffer.isBuffer(payload)) return { body: payload, contentType: CONTENT_TYPES.buffer };
  if (payload instanceof Uint8Array) return { body: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), contentType: CONTENT_TYPES.buffer };
  if (typeof payload === "string") return { body: Buffer.from(payload, "utf8"), contentType: CONTENT_TYPES.string };
  let text: string | undefined;
  try {
    text = JSON.stringify(payload ?? null);
  } catch (err) {
    throw new WireError("BAD_REQUEST", `msg.payload cannot be sent: ${(err as Error).message}`);
  }
  if (text === undefined) throw new WireError("BAD_REQUEST", `msg.payload of type ${typeof payload} cannot be sent`);
  return { body: Buffer.from(text, "utf8"), contentType: CONTENT_TYPES.json };
}

export function decodePayload(body: Buffer, contentType: string | undefined): unknown {
  // The types this package sends are taken as they are; splitting off parameters was a cost per message.
  const kind = contentType === CONTENT_TYPES.json ? "application/json" : contentType === CONTENT_TYPES.string ? "text/plain" : (contentType ?? "").split(";")[0].trim();
  switch (kind) {
    case "application/octet-stream":
      return body;
    case "text/plain":
      return body.toString("utf8");
    case "application/json":
      try {
        return JSON.parse(body.toString("utf8"));
      } catch (err) {
        throw new WireError("BAD_REQUEST", `the JSON body cannot be parsed: ${(err as Error).message}`);
      }
    default:
      throw new WireError("BAD_REQUEST", `unsupported content-type "${contentType ?? ""}"`);
  }
}

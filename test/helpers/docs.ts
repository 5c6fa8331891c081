/** A document as replication carries it: with a revision and its history (what `new_edits: false` takes). */
export const withRev = <T extends { _id: string }>(doc: T) => ({ ...doc, _rev: "1-0123456789abcdef0123456789abcdef", _revisions: { start: 1, ids: ["0123456789abcdef0123456789abcdef"] } });

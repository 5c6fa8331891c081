import fs from "node:fs";
import path from "node:path";
import PouchDB from "pouchdb-node";

export type Database = PouchDB.Database;

/**
 * A PouchDB (LevelDB) database in a directory of its own. One directory per device keeps two identities in
 * one Node-RED (as in the demo) from sharing data.
 */
export function openDatabase(directory: string, name: string): Database {
  fs.mkdirSync(directory, { recursive: true });
  return new PouchDB(path.join(directory, name));
}

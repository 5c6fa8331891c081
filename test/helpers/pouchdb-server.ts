import { ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { freePort } from "./ports";
import { TempDirs } from "./storage";

export interface CloudServer {
  url: string;
  auth: { username: string; password: string };
  stop(): Promise<void>;
}

/**
 * pouchdb-server (in memory, or LevelDB on disk) on 127.0.0.1, standing in for a cloud CouchDB. `databases` are created and
 * readable only by one user: anonymous requests get 401, as on a real server with credentials.
 */
export async function startCloud(databases: string[], options: { onDisk?: boolean } = {}): Promise<CloudServer> {
  const port = await freePort();
  const dirs = new TempDirs();
  const bin = path.join(require.resolve("pouchdb-server/package.json"), "..", "bin", "pouchdb-server");
  const cwd = dirs.make("pouchdb-server-");
  const storage = options.onDisk ? ["--dir", cwd] : ["--in-memory"];
  const child: ChildProcess = spawn(process.execPath, [bin, ...storage, "--port", String(port), "--host", "127.0.0.1"], { cwd, stdio: "ignore" });
  const base = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
    dirs.removeAll();
  };
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const up = await fetch(base).then((response) => response.ok, () => false);
      if (up) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error("pouchdb-server did not start");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const auth = { username: "device", password: "cloud-secret" };
    const put = async (route: string, body?: unknown): Promise<void> => {
      const response = await fetch(`${base}/${route}`, { method: "PUT", headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
      if (!response.ok) throw new Error(`pouchdb-server: PUT ${route} answered ${response.status} ${await response.text()}`);
    };
    // Order matters: pouchdb-server 4.2 cannot create databases once an admin exists.
    for (const name of databases) await put(name);
    await put(`_users/org.couchdb.user:${auth.username}`, { name: auth.username, password: auth.password, roles: [], type: "user" });
    for (const name of databases) await put(`${name}/_security`, { members: { names: [auth.username], roles: [] }, admins: { names: [], roles: [] } });
    await put("_config/admins/admin", "admin-secret");
    return { url: base, auth, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** Temporary directories removed by removeAll, even when a test failed halfway. */
export class TempDirs {
  private readonly dirs: string[] = [];

  make(prefix = "peer-mesh-"): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  removeAll(): void {
    for (const dir of this.dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

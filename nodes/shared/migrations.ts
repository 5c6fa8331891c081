/**
 * A setting a flow saved by an earlier release lacks, and what that flow meant by leaving it out. Each
 * node lists its own and applies them before reading its settings, so the reading code sees current
 * settings only (rather than an `undefined` check wherever a field is read).
 */
export interface Migration<Def> {
  field: keyof Def;
  /** The value the old flow behaved as. */
  was: unknown;
  /** Which release or feature added the field, and why the old value is what it is. */
  why: string;
}

/** The node's settings with every missing field filled as the flow that lacked it behaved. */
export function migrate<Def extends object>(def: Def, migrations: ReadonlyArray<Migration<Def>>): Def {
  const current = { ...def };
  for (const migration of migrations) {
    if (current[migration.field] === undefined) (current as Record<keyof Def, unknown>)[migration.field] = structuredClone(migration.was);
  }
  return current;
}

/** Drift (seconds) left alone: setting the clock steps it, which is worse than a small offset. */
const TOLERATED_DRIFT_S = 2;

/**
 * Shell that sets the guest's clock to `now` when it is more than 2 s off: a VM that waited in a
 * warm pool may have drifted. It rides on the job's first command (no round trip of its own; a
 * separate channel beside it was measured to make dropbear refuse the SFTP subsystem about one
 * time in ten). Where the user may not set the clock, the guest keeps its own and says nothing.
 */
export function clockCheckScript(now: Date): string {
  const t = Math.round(now.getTime() / 1000);
  // A subshell, so a `date` without %s (an arithmetic error ends a POSIX shell) stops only the check.
  return (
    `(t=${t}; d=$(($(date +%s) - t)); ` +
    `if [ "$d" -gt ${TOLERATED_DRIFT_S} ] || [ "$d" -lt -${TOLERATED_DRIFT_S} ]; then date -u -s "@$t"; fi) >/dev/null 2>&1`
  );
}

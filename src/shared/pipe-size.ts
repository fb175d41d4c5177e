// Wider pipes for the borg stream. sshd hands the forced command its client's stream through
// pipes, and a Linux pipe holds 64 KiB: a `borg create` of 1 GiB then goes through some 16,000
// fills and drains of that pipe, each a wake-up of the borg client (blocked in its write), of sshd
// and of the guard. Widening both pipes to 1 MiB (F_SETPIPE_SZ; what /proc/sys/fs/pipe-max-size
// allows an unprivileged process by default) let every process on the path do less:
// bench/borg-create measured the guard's CPU at 0.90 s/GiB instead of 1.22, and the borg client's
// and borg serve's fell too.
//
// Wide pipes are not free for everyone else: Linux counts every pipe's capacity against its
// user, and once an unprivileged user's pipes hold more than /proc/sys/fs/pipe-user-pages-soft
// pages (64 MiB by default), each new pipe of that user gets 8 KiB — sshd's pipes of the next
// sessions included, far worse than 64 KiB. So a session widens only while every open session
// on this host, widened too, stays within half that limit (pipeWideningFits): at the defaults,
// the first 15 concurrent sessions get 1 MiB pipes and the rest keep the kernel's default.
//
// Node has no fcntl. `perl` does (perl-base is part of every Debian and Ubuntu system), so a
// short-lived perl, given the two descriptors, widens the pipes they refer to (a pipe's size
// belongs to the pipe, not to the descriptor). Its script is a constant: nothing of the client's
// reaches its argv. Without perl, on another system, for descriptors that are no pipes, or past
// the per-user limit of pipe memory (pipe-user-pages-soft), the pipes stay as they are and
// nothing else changes: this is speed, never correctness.

import { spawn } from 'node:child_process';
import { fstatSync, readFileSync } from 'node:fs';

/** The capacity asked for: the kernel's default pipe-max-size. */
export const WIDE_PIPE_BYTES = 1024 * 1024;

/** The pages one session's pipes hold when widened: stdin and stdout at WIDE_PIPE_BYTES, stderr at the default 16. */
const PAGES_PER_WIDE_SESSION = (2 * WIDE_PIPE_BYTES) / 4096 + 16;

/** pipe-user-pages-soft: a number of pages, 0 for no limit, null when it cannot be read. */
export function pipeUserPagesSoft(): number | null {
  try {
    const n = Number(readFileSync('/proc/sys/fs/pipe-user-pages-soft', 'utf8').trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * Whether one more session may widen its pipes, with `openSessions` others open on this host:
 * always for root (the limit does not apply to it) and without a limit; else while all of them,
 * widened, stay within half the soft limit. An unknown limit is taken as the kernel's default.
 */
export function pipeWideningFits(openSessions: number, softLimitPages: number | null, uid: number | null): boolean {
  if (uid === 0 || softLimitPages === 0) return true;
  const limit = softLimitPages ?? 16384;
  return (Math.max(0, openSessions) + 1) * PAGES_PER_WIDE_SESSION <= limit / 2;
}

/** Linux's F_SETPIPE_SZ (F_LINUX_SPECIFIC_BASE + 7). */
const F_SETPIPE_SZ = 1031;

const isPipe = (fd: number): boolean => {
  try {
    return fstatSync(fd).isFIFO();
  } catch {
    return false;
  }
};

/**
 * Widens the pipes behind `fds` (of this process; those that are pipes) to WIDE_PIPE_BYTES.
 * Returns at once; the promise settles (never rejects) once the attempt is over, whatever its
 * outcome: true when every pipe was widened.
 */
export function widenPipes(fds: readonly number[]): Promise<boolean> {
  const pipes = process.platform === 'linux' ? fds.filter(isPipe) : [];
  if (pipes.length === 0) return Promise.resolve(false);
  // perl sees them as its descriptors 3, 4, ...: STDIN and STDOUT stay its own. A read end
  // opens for reading, a write end for writing (fdopen refuses the other).
  const script = `my $ok = 1; for my $fd (3 .. ${2 + pipes.length}) { my $h; (open($h, '<&=', $fd) || open($h, '>&=', $fd)) && fcntl($h, ${F_SETPIPE_SZ}, ${WIDE_PIPE_BYTES}) or $ok = 0 } exit($ok ? 0 : 1)`;
  return new Promise((resolve) => {
    try {
      const child = spawn('perl', ['-e', script], { stdio: ['ignore', 'ignore', 'ignore', ...pipes], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      child.once('error', () => resolve(false));
      child.once('exit', (code) => resolve(code === 0));
      child.unref();
    } catch {
      resolve(false);
    }
  });
}

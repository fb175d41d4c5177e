// A node process between borg and its borg serve that only pipes bytes both ways and reads none:
// what any proxy written in node costs a backup before it decides anything (borg-create's
// BENCH_FLOOR=1, the (d) runs).
import { spawn } from 'node:child_process';

const [command, ...args] = process.argv.slice(2);
const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
process.stdin.pipe(child.stdin);
child.stdout.pipe(process.stdout);
child.on('exit', (code, signal) => {
  process.exitCode = code ?? (signal ? 1 : 0);
});

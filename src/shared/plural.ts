// A count with its noun: "1 session", "3 sessions" — one form for the CLI's output and the
// sentences the guard, the gateway and the server's own runs write.

export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

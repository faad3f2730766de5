/**
 * Adds up the workers' stats: every number is summed field by field, nested
 * records (reasons, acceptErrors, dataPaths…) included, so a counter a newer
 * ServerStats adds is summed without a change here.
 */
export function sumStats<T extends object>(parts: readonly T[]): T | undefined {
  if (parts.length === 0) return undefined;
  const total: Record<string, unknown> = {};
  for (const part of parts) addInto(total, part as Record<string, unknown>);
  return total as T;
}

function addInto(total: Record<string, unknown>, part: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(part)) {
    if (typeof value === 'number') {
      const before = total[key];
      total[key] = (typeof before === 'number' ? before : 0) + value;
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const before = total[key];
      const into = before !== null && typeof before === 'object' ? (before as Record<string, unknown>) : {};
      total[key] = into;
      addInto(into, value as Record<string, unknown>);
    }
  }
}

import { formatCommand } from '../lib/tools/rules';
import { isParseArgsError, type Subcommand, UsageError } from '../lib/tools/cli';
import * as bench from './run';

/**
 * `rxredirect bench`: the harness's command. It lives here, not in lib/, because the
 * library never imports benchmarks/; bin/rxredirect.js adds it to the CLI.
 */

const BENCH_USAGE = `rxredirect bench [--quick] [--middleware FILE] [options]

  --quick               short runs (2–3 minutes with every subject) instead of the full set
  --middleware FILE     your chain: FILE exports \`middleware: Middleware[]\` (or a default)
  --name NAME           your chain's name in the report (default: FILE's name, e.g. chain.js)
  --runs N              runs per subject (default 3 quick, 5 full)
  --subjects A,B        direct, plain, rx, rx-map3, rx-zc, haproxy-splice, haproxy, socat (with --middleware: direct, plain, rx, user)
  --scenarios A,B       bulk-up, bulk-down, streams-64, connrate, idle-rss, slow-reader
  --generator G         auto (iperf3 when installed), iperf3 or node
  --out DIR             results directory (default ./benchmarks/results)
  --report FILE         Markdown report there (SVG next to it) instead of DIR/report.md
  --note TEXT           a sentence for the report (e.g. what else was running)`;

export const benchCommand: Subcommand = {
  summary: 'throughput, connection rate and memory against a plain Node relay (or of your --middleware chain)',
  usage: BENCH_USAGE,
  async run(args, io) {
    let options: ReturnType<typeof bench.parseBenchArgs>;
    try {
      options = bench.parseBenchArgs(args);
    } catch (err) {
      throw isParseArgsError(err) ? err : new UsageError((err as Error).message);
    }
    const { reportPath, jsonPath } = await bench.runBench({
      ...options,
      command: formatCommand(['rxredirect', 'bench', ...args]),
      log: (line) => io.stderr.write(`${line}\n`),
    });
    io.stdout.write(`${reportPath}\n${jsonPath}\n`);
    return 0;
  },
};

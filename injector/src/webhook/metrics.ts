/**
 * The injector's Prometheus metrics, rendered in the text exposition format. Small on purpose:
 * three counters and one histogram do not justify a metrics library.
 */
import { INJECTOR_METRICS, VERSION } from '@remora/proxy/contract';

export const REVIEW_RESULTS = ['injected', 'skipped', 'rejected', 'ignored', 'dry_run', 'malformed'] as const;
export type ReviewResult = (typeof REVIEW_RESULTS)[number];

/** Seconds; the bucket bounds bracket the < 10 ms goal of a review. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] as const;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** What the identity CA counts (ca/server.ts), read at every scrape. */
export interface CaCounters {
  readonly stats: { readonly issued: number; readonly refused: Readonly<Record<string, number | undefined>> };
  readonly streams: {
    readonly open: number;
    readonly refused: Readonly<Record<string, number | undefined>>;
    readonly slowClosed: number;
  };
}

export class InjectorMetrics {
  private ca: CaCounters | undefined;
  private readonly reviews = new Map<string, number>();
  private readonly skips = new Map<string, number>();
  private injections = 0;
  private readonly bucketCounts = new Array<number>(BUCKETS.length).fill(0);
  private durationSum = 0;
  private durationCount = 0;
  private readonly policyUpdates = { accepted: 0, rejected: 0 };
  /** Counts one answered review; `seconds` is absent when the body never reached the handler. */
  review(result: ReviewResult, seconds?: number): void {
    this.reviews.set(result, (this.reviews.get(result) ?? 0) + 1);
    if (seconds === undefined) return;
    for (let i = 0; i < BUCKETS.length; i++)
      if (seconds <= (BUCKETS[i] as number)) this.bucketCounts[i]! += 1;
    this.durationSum += seconds;
    this.durationCount += 1;
  }

  injection(): void {
    this.injections += 1;
  }

  skip(reason: string): void {
    this.skips.set(reason, (this.skips.get(reason) ?? 0) + 1);
  }

  /** A policy document read from its file or ConfigMap (injector/src/policy/store.ts). */
  policyUpdate(result: 'accepted' | 'rejected'): void {
    this.policyUpdates[result] += 1;
  }

  /** The identity CA whose counters are rendered too. */
  observeCa(ca: CaCounters): void {
    this.ca = ca;
  }

  /** Prometheus text format 0.0.4. */
  render(): string {
    const m = INJECTOR_METRICS;
    const lines: string[] = [
      `# HELP ${m.reviewsTotal} AdmissionReviews answered, by result.`,
      `# TYPE ${m.reviewsTotal} counter`,
    ];
    for (const r of REVIEW_RESULTS)
      lines.push(`${m.reviewsTotal}{result="${r}"} ${this.reviews.get(r) ?? 0}`);
    lines.push(
      `# HELP ${m.injectionsTotal} Pods injected (dry runs excluded).`,
      `# TYPE ${m.injectionsTotal} counter`,
      `${m.injectionsTotal} ${this.injections}`,
      `# HELP ${m.skipsTotal} Pods not injected, by reason code (dry runs excluded).`,
      `# TYPE ${m.skipsTotal} counter`,
    );
    for (const [reason, n] of [...this.skips].sort())
      lines.push(`${m.skipsTotal}{reason="${escapeLabel(reason)}"} ${n}`);
    lines.push(
      `# HELP ${m.reviewDuration} Time to answer one AdmissionReview, from body received to answer encoded.`,
      `# TYPE ${m.reviewDuration} histogram`,
    );
    BUCKETS.forEach((b, i) => lines.push(`${m.reviewDuration}_bucket{le="${b}"} ${this.bucketCounts[i]}`));
    lines.push(
      `${m.reviewDuration}_bucket{le="+Inf"} ${this.durationCount}`,
      `${m.reviewDuration}_sum ${this.durationSum}`,
      `${m.reviewDuration}_count ${this.durationCount}`,
      `# HELP ${m.policyUpdates} Policy documents read from the file or ConfigMap, by result.`,
      `# TYPE ${m.policyUpdates} counter`,
      `${m.policyUpdates}{result="accepted"} ${this.policyUpdates.accepted}`,
      `${m.policyUpdates}{result="rejected"} ${this.policyUpdates.rejected}`,
    );
    const byReason = (name: string, counts: Readonly<Record<string, number | undefined>>): void => {
      for (const [reason, n] of Object.entries(counts).sort())
        lines.push(`${name}{reason="${escapeLabel(reason)}"} ${n ?? 0}`);
    };
    // Signings are always rendered (0 without a CA), so dashboards see the series at once.
    lines.push(
      `# HELP ${m.certificatesIssued} Workload certificates the identity CA signed.`,
      `# TYPE ${m.certificatesIssued} counter`,
      `${m.certificatesIssued} ${this.ca?.stats.issued ?? 0}`,
      `# HELP ${m.certificatesRefused} Certificate requests the identity CA refused, by reason.`,
      `# TYPE ${m.certificatesRefused} counter`,
    );
    byReason(m.certificatesRefused, this.ca?.stats.refused ?? {});
    if (this.ca) {
      const c = this.ca;
      lines.push(
        `# HELP ${m.streamsOpen} Discovery and policy streams open.`,
        `# TYPE ${m.streamsOpen} gauge`,
        `${m.streamsOpen} ${c.streams.open}`,
        `# HELP ${m.streamsRefused} Streams refused, by reason.`,
        `# TYPE ${m.streamsRefused} counter`,
      );
      byReason(m.streamsRefused, c.streams.refused);
      lines.push(
        `# HELP ${m.streamsSlowClosed} Streams closed because their subscriber stopped reading.`,
        `# TYPE ${m.streamsSlowClosed} counter`,
        `${m.streamsSlowClosed} ${c.streams.slowClosed}`,
      );
    }
    lines.push(
      `# HELP remora_injector_build_info Version of this injector.`,
      `# TYPE remora_injector_build_info gauge`,
      `remora_injector_build_info{version="${VERSION}"} 1`,
    );
    return `${lines.join('\n')}\n`;
  }
}

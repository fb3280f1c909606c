/**
 * Who presented a token: the CA asks a TokenReviewer and takes the namespace and service account
 * from its answer. In Kubernetes that is the TokenReview API with audience `remora` (only
 * tokens projected for Remora pass, not the pod's default API token); outside it, a static
 * file mapping token → "namespace/serviceaccount" stands in.
 */
import { readFileSync } from 'node:fs';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { TOKEN_AUDIENCE } from '@remora/proxy/contract';
import { parseDnsLabel, parseDnsSubdomain } from '@remora/proxy/values';
import { TokenRefusedError, TokenReviewUnavailableError } from './errors.js';

export interface Reviewed {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Resolves to who the token belongs to; rejects with TokenRefusedError or TokenReviewUnavailableError. */
export type TokenReviewer = (token: string) => Promise<Reviewed>;

function parseWho(who: string, where: string): Reviewed {
  const m = /^([^/]+)\/([^/]+)$/.exec(who);
  // Kubernetes names: a namespace is a DNS label, a service account a DNS subdomain.
  if (!m || !parseDnsLabel(m[1] as string).ok || !parseDnsSubdomain(m[2] as string).ok)
    throw new Error(`${where}: ${JSON.stringify(who)} must be "namespace/serviceaccount"`);
  return { namespace: m[1] as string, serviceAccount: m[2] as string };
}

/** Reads the static token file (JSON object token → "ns/sa"); throws listing every bad entry. */
export function loadStaticTokens(file: string): Map<string, Reviewed> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: cannot read a JSON object: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error(`${file}: must hold a JSON object of token → "namespace/serviceaccount"`);
  const out = new Map<string, Reviewed>();
  const errors: string[] = [];
  for (const [token, who] of Object.entries(parsed as Record<string, unknown>)) {
    if (token.length < 16) errors.push(`${file}: a token shorter than 16 characters`);
    else if (typeof who !== 'string') errors.push(`${file}: value of a token is not a string`);
    else {
      try {
        out.set(token, parseWho(who, file));
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  }
  if (errors.length > 0) throw new Error(errors.join('; '));
  return out;
}

export function staticTokenReviewer(tokens: ReadonlyMap<string, Reviewed>): TokenReviewer {
  return (token) => {
    const who = tokens.get(token);
    return who ? Promise.resolve(who) : Promise.reject(new TokenRefusedError('unknown token'));
  };
}

const SA_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** TokenReview with audience `remora`: authenticated, for that audience, a service account. */
export function kubeTokenReviewer(kc: KubeConfig): TokenReviewer {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token) => {
    let status;
    try {
      const r = await api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [TOKEN_AUDIENCE] },
        },
      });
      status = r.status;
    } catch (err) {
      throw new TokenReviewUnavailableError(`TokenReview failed: ${(err as Error).message}`);
    }
    if (!status?.authenticated) throw new TokenRefusedError(status?.error ?? 'token not authenticated');
    if (!(status.audiences ?? []).includes(TOKEN_AUDIENCE))
      throw new TokenRefusedError(`token not issued for audience ${TOKEN_AUDIENCE}`);
    const m = SA_USER.exec(status.user?.username ?? '');
    if (!m)
      throw new TokenRefusedError(
        `token belongs to ${status.user?.username ?? 'nobody'}, not a service account`,
      );
    return { namespace: m[1] as string, serviceAccount: m[2] as string };
  };
}

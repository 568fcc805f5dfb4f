/**
 * The one paginator for GitLab list endpoints (offset pagination, `x-next-page`; the requester derives it from `Link`
 * when only that is sent). Pages are fetched one at a time with an explicit `page`, so gitbeaker never follows links
 * on its own, and a cap bounds every list: one request can never page through a project's whole history.
 */
import type { ZodType } from 'zod';
import { BrokerError } from '../../core/errors.js';
import { parseGitLab } from './translate.js';

export const PER_PAGE = 100;

export interface Page<T> {
  readonly items: readonly T[];
  readonly next: number | null;
}

/** gitbeaker's `showExpanded` answer to one page, validated item by item. */
export function pageOf<T>(schema: ZodType<T>, response: unknown, endpoint: string): Page<T> {
  const { data, paginationInfo } = response as { data: unknown; paginationInfo?: { next?: number | null } };
  const next = paginationInfo?.next;
  return { items: parseGitLab(schema.array(), data, endpoint), next: typeof next === 'number' && Number.isInteger(next) ? next : null };
}

/** The first item that matches, looking at no more than `maxPages` pages; undefined when none does within them. */
export async function findInPages<T>(fetchPage: (page: number) => Promise<Page<T>>, matches: (item: T) => boolean, maxPages: number): Promise<T | undefined> {
  for (let page = 1, fetched = 0; fetched < maxPages; fetched += 1) {
    const { items, next } = await fetchPage(page);
    const match = items.find(matches);
    if (match !== undefined) return match;
    if (next === null || next <= page) return undefined;
    page = next;
  }
  return undefined;
}

/** Every item of a list of at most `maxPages` pages; a longer list fails closed (`what` names it), never half-read. */
export async function allPages<T>(fetchPage: (page: number) => Promise<Page<T>>, maxPages: number, what: string): Promise<T[]> {
  const items: T[] = [];
  for (let page = 1, fetched = 0; ; fetched += 1) {
    if (fetched === maxPages) throw new BrokerError('upstream_unavailable', `${what}: more than ${maxPages} pages of ${PER_PAGE}`);
    const result = await fetchPage(page);
    items.push(...result.items);
    if (result.next === null || result.next <= page) return items;
    page = result.next;
  }
}

/** Request ids: echo a sane client-sent `X-Request-Id`, else make one. */

const SANE = /^[\w.:\-/+=@]{1,128}$/;

/** The id for this request: the client's if it is short and printable, else a new UUID. */
export function requestId(sent: string | undefined): string {
  return sent !== undefined && SANE.test(sent) ? sent : crypto.randomUUID();
}

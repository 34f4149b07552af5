/**
 * The WHATWG "event stream interpretation" algorithm, incremental: text goes
 * in as it arrives (already decoded from UTF-8, which also drops the one BOM
 * the standard drops), events come out.
 */

/** One event as an EventSource would dispatch it, plus the selectors ssehub names. */
export interface SseEvent {
  /** The `event:` field; `message` when the frame has none. */
  type: string;
  /** The `data:` lines joined with LF. */
  data: string;
  /** The stream's last event id when the event was dispatched (`''` if none yet). */
  id: string;
  /**
   * The values of the frame's `matched:` lines (ssehub's `ssehub_matched=1`
   * extension, a field EventSource ignores): the stream's selectors the
   * event was received through. Undefined when the stream did not open
   * with ssehub's `:ssehub_matched` comment (a hub without the extension).
   */
  matched?: string[];
}

/** Where a parser sends what it reads. */
export interface SseSink {
  /** A dispatched event. */
  event(event: SseEvent): void;
  /** A valid `retry:` field: the new reconnection time in milliseconds. */
  retry(ms: number): void;
}

/**
 * Returns a function to feed with successive pieces of the decoded stream.
 * Lines may end with CRLF, LF or CR, split anywhere between pieces.
 */
export function createParser(sink: SseSink): (text: string) => void {
  let pending = '';
  let data = '';
  let type = '';
  let id = '';
  let matched: string[] | undefined;
  // The previous piece ended with CR: a LF opening the next one ends nothing.
  let afterCR = false;

  const line = (text: string): void => {
    if (!text) {
      if (data) sink.event({ type: type || 'message', data: data.slice(0, -1), id, matched: matched?.slice() });
      data = type = '';
      if (matched) matched.length = 0;
      return;
    }
    if (text[0] === ':') {
      if (text === ':ssehub_matched') matched = [];
      return;
    }
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') data += value + '\n';
    else if (field === 'event') type = value;
    else if (field === 'id') {
      if (!value.includes('\0')) id = value;
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) sink.retry(Number(value));
    } else if (field === 'matched') matched?.push(value);
  };

  return (text) => {
    if (!text) return;
    if (afterCR && text[0] === '\n') text = text.slice(1);
    afterCR = false;
    // Only the new text needs scanning for line ends.
    const breaks = /[\r\n]/g;
    breaks.lastIndex = pending.length;
    const all = pending + text;
    let start = 0;
    for (let m = breaks.exec(all); m; m = breaks.exec(all)) {
      line(all.slice(start, m.index));
      let next = m.index + 1;
      if (m[0] === '\r') {
        if (next === all.length) afterCR = true;
        else if (all[next] === '\n') next++;
      }
      start = breaks.lastIndex = next;
    }
    pending = all.slice(start);
  };
}

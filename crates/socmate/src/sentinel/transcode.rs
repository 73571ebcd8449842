//! One pass from a Log Analytics answer to SoCMate's table JSON, fed chunk by chunk as it
//! downloads, without a value tree.
//!
//! The answer's shape is fixed (`{"tables":[{"name","columns","rows":[[cell,…],…]}],…}`), so the
//! scanner walks it with a small explicit state and copies each cell to the output in the exact
//! form it was sent — numbers as their digits (a long never passes through `f64`), strings with
//! their escapes — after validating it as JSON. `dynamic` cells, JSON encoded in a string on the
//! wire, are decoded and emitted as the JSON they hold (unless they nest deeper than
//! [`MAX_VALUE_DEPTH`]: then they stay the string they came as, and are counted). Rows past the
//! cap are validated and skipped.
//!
//! Why not serde_json's `io::Read` deserializer: it reads one byte at a time, and a 153 MiB answer
//! took 24 times its raw download through SoCMate with it; scanning whole chunks (strings eight
//! bytes at a time) halves that (docs/benchmarks.md). Each step — one row, one key with its value — either completes or
//! is retried from its start once more of the body has arrived; only the unfinished step's bytes
//! are kept.
//! Log Analytics sends `name`, `columns`, then `rows`; should rows ever come before columns,
//! dynamic cells pass through as strings rather than failing the result.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::value::RawValue;

use crate::siem::MAX_VALUE_DEPTH;

/// What a Log Analytics answer holds besides its tables.
#[derive(Debug, Default)]
pub struct Transcoded {
    pub tables_json: Vec<u8>,
    pub row_count: usize,
    pub truncated: bool,
    pub error: Option<serde_json::Value>,
    pub statistics: Option<Box<RawValue>>,
    pub saw_tables: bool,
    pub values_left_encoded: usize,
}

/// Why an answer is not a Log Analytics query result, and where.
#[derive(Debug, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct TranscodeError {
    what: Cow<'static, str>,
    at: usize,
}

/// Where the scanner stands in the answer, between two steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before the answer's `{`.
    Start,
    /// Inside the answer, before a key or its `}`.
    AnswerKey { first: bool },
    /// After `"tables":`.
    Tables,
    /// Inside the tables array, before a table or its `]`.
    NextTable { first: bool },
    /// Inside a table, before a key or its `}`; `wrote` says whether a kept key was written.
    TableKey { first: bool, wrote: bool },
    /// After a table's `"rows":`.
    Rows,
    /// Inside a rows array, before a row or its `]`.
    NextRow { first: bool },
    /// After the answer's `}`: only white space may follow.
    End,
}

/// A step could not finish: it needs more of the body, or the body is not valid.
enum Stop {
    More,
    Invalid(Cow<'static, str>),
    /// A value nests deeper than allowed (only asked of dynamic cells' JSON).
    TooDeep,
}

fn invalid<T>(what: impl Into<Cow<'static, str>>) -> Result<T, Stop> {
    Err(Stop::Invalid(what.into()))
}

/// Bytes of a new chunk copied at least to finish a step cut at the previous chunk's end (a row
/// is usually far shorter).
const MIN_CARRY: usize = 4096;

/// A Log Analytics answer, transcoded as its chunks arrive.
pub struct Transcoder {
    /// Received bytes not consumed yet: the start of an unfinished step.
    pending: Vec<u8>,
    /// Bytes consumed before `pending`, for error positions.
    consumed: usize,
    /// An unfinished step is tried again once `pending` holds this many bytes: each try doubles
    /// it, so a value spread over many chunks is rescanned a few times, not once per chunk.
    retry_at: usize,
    position: Position,
    /// Whether each column of the current table is `dynamic`.
    dynamic: Vec<bool>,
    /// Decoded text of a dynamic cell, reused.
    scratch: Vec<u8>,
    row_cap: usize,
    result: Transcoded,
    #[cfg(test)]
    scans: usize,
}

impl Transcoder {
    /// `size_hint` pre-sizes the output to avoid regrowing it.
    pub fn new(row_cap: usize, size_hint: usize) -> Self {
        Self {
            pending: Vec::new(),
            consumed: 0,
            retry_at: 0,
            position: Position::Start,
            dynamic: Vec::new(),
            scratch: Vec::new(),
            row_cap,
            result: Transcoded {
                tables_json: Vec::with_capacity(size_hint),
                ..Transcoded::default()
            },
            #[cfg(test)]
            scans: 0,
        }
    }

    /// Transcodes as much as `chunk` (after what came before) allows.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), TranscodeError> {
        let mut rest = chunk;
        // First the step the previous chunk cut short, copying only as much of this chunk as it
        // needs; `from_chunk` counts the bytes of `pending` that came from this chunk.
        let mut from_chunk = 0;
        while !self.pending.is_empty() {
            if self.pending.len() >= self.retry_at {
                let pending = std::mem::take(&mut self.pending);
                let used = self.scan(&pending, 1);
                self.pending = pending;
                let used = used?;
                if used > 0 {
                    self.retry_at = 0;
                    let left = self.pending.len() - used;
                    if left <= from_chunk {
                        rest = &chunk[chunk.len() - rest.len() - left..];
                        self.pending.clear();
                        break;
                    }
                    self.pending.drain(..used);
                    continue;
                }
                self.retry_at = self.pending.len().saturating_mul(2);
            }
            if rest.is_empty() {
                return Ok(());
            }
            let wanted = self.retry_at.saturating_sub(self.pending.len());
            let take = rest.len().min(wanted.max(MIN_CARRY));
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            from_chunk += take;
        }
        let used = self.scan(rest, usize::MAX)?;
        self.pending.extend_from_slice(&rest[used..]);
        Ok(())
    }

    /// The table JSON written since the last [`Self::take_output`].
    pub fn output_len(&self) -> usize {
        self.result.tables_json.len()
    }

    /// Takes the table JSON written so far, to send it on while the rest is transcoded.
    pub fn take_output(&mut self, next_capacity: usize) -> Vec<u8> {
        std::mem::replace(
            &mut self.result.tables_json,
            Vec::with_capacity(next_capacity),
        )
    }

    /// Ends the answer: fails when it stopped before its last `}`. The table JSON in the result
    /// is what was written since the last [`Self::take_output`].
    pub fn finish(mut self) -> Result<Transcoded, TranscodeError> {
        let pending = std::mem::take(&mut self.pending);
        let used = self.scan(&pending, usize::MAX)?;
        if self.position != Position::End || used < pending.len() {
            return Err(TranscodeError {
                what: "the answer ends before it is complete".into(),
                at: self.consumed,
            });
        }
        if !self.result.saw_tables {
            self.result.tables_json.extend_from_slice(b"[]");
        }
        Ok(self.result)
    }

    /// Runs up to `steps` steps over `buf`, stopping early at one that needs more input;
    /// returns the bytes consumed.
    fn scan(&mut self, buf: &[u8], steps: usize) -> Result<usize, TranscodeError> {
        #[cfg(test)]
        {
            self.scans += 1;
        }
        let mut cursor = Cursor {
            buf,
            pos: 0,
            complete: false,
        };
        for _ in 0..steps {
            let (start, mark, left_encoded) = (
                cursor.pos,
                self.result.tables_json.len(),
                self.result.values_left_encoded,
            );
            match self.step(&mut cursor) {
                Ok(true) => {}
                Ok(false) => break,
                Err(Stop::More) => {
                    // Undo the unfinished step; it runs again with more of the body.
                    cursor.pos = start;
                    self.result.tables_json.truncate(mark);
                    self.result.values_left_encoded = left_encoded;
                    break;
                }
                Err(Stop::TooDeep) => {
                    // Only a dynamic cell's JSON is held to a depth, and it is caught there.
                    return Err(TranscodeError {
                        what: "a value nests too deep".into(),
                        at: self.consumed + cursor.pos,
                    });
                }
                Err(Stop::Invalid(what)) => {
                    return Err(TranscodeError {
                        what,
                        at: self.consumed + cursor.pos,
                    });
                }
            }
        }
        self.consumed += cursor.pos;
        Ok(cursor.pos)
    }

    /// One step: `Ok(false)` once the answer has ended.
    fn step(&mut self, c: &mut Cursor<'_>) -> Result<bool, Stop> {
        let out = &mut self.result.tables_json;
        self.position = match self.position {
            Position::Start => {
                c.expect(b'{', "expected a Log Analytics query answer (an object)")?;
                Position::AnswerKey { first: true }
            }
            Position::AnswerKey { first } => {
                let Some(key) = c.key(first)? else {
                    self.position = Position::End;
                    return Ok(true);
                };
                match key.as_str() {
                    "tables" if !self.result.saw_tables => {
                        self.result.saw_tables = true;
                        Position::Tables
                    }
                    "error" => {
                        let value = c.value()?;
                        self.result.error = parse(&c.buf[value])?;
                        Position::AnswerKey { first: false }
                    }
                    "statistics" => {
                        let value = c.value()?;
                        self.result.statistics = parse(&c.buf[value])?;
                        Position::AnswerKey { first: false }
                    }
                    _ => {
                        c.value()?;
                        Position::AnswerKey { first: false }
                    }
                }
            }
            Position::Tables => {
                c.expect(b'[', "expected an array of tables")?;
                out.push(b'[');
                Position::NextTable { first: true }
            }
            Position::NextTable { first } => {
                if c.close_or_separate(b']', first)? {
                    out.push(b']');
                    Position::AnswerKey { first: false }
                } else {
                    c.expect(b'{', "expected a table (an object)")?;
                    out.extend_from_slice(if first { b"{" } else { b",{" });
                    self.dynamic.clear();
                    Position::TableKey {
                        first: true,
                        wrote: false,
                    }
                }
            }
            Position::TableKey { first, wrote } => {
                let Some(key) = c.key(first)? else {
                    out.push(b'}');
                    self.position = Position::NextTable { first: false };
                    return Ok(true);
                };
                if !matches!(key.as_str(), "name" | "columns" | "rows") {
                    c.value()?;
                    self.position = Position::TableKey {
                        first: false,
                        wrote,
                    };
                    return Ok(true);
                }
                if wrote {
                    out.push(b',');
                }
                match key.as_str() {
                    "name" => {
                        if c.peek()? != b'"' {
                            return invalid("a table's name must be a string");
                        }
                        let name = c.string()?;
                        out.extend_from_slice(b"\"name\":");
                        out.extend_from_slice(&c.buf[name.range]);
                    }
                    "columns" => {
                        let value = c.value()?;
                        let columns: Vec<Column> = parse(&c.buf[value])?;
                        self.dynamic = columns.iter().map(|c| c.kind == "dynamic").collect();
                        out.extend_from_slice(b"\"columns\":");
                        serde_json::to_writer(&mut *out, &columns)
                            .map_err(|e| Stop::Invalid(e.to_string().into()))?;
                    }
                    _ => {
                        out.extend_from_slice(b"\"rows\":");
                        self.position = Position::Rows;
                        return Ok(true);
                    }
                }
                Position::TableKey {
                    first: false,
                    wrote: true,
                }
            }
            Position::Rows => {
                c.expect(b'[', "a table's rows must be an array")?;
                out.push(b'[');
                Position::NextRow { first: true }
            }
            Position::NextRow { first } => {
                if c.close_or_separate(b']', first)? {
                    out.push(b']');
                    Position::TableKey {
                        first: false,
                        wrote: true,
                    }
                } else if self.result.row_count >= self.row_cap {
                    // Past the cap: validate the row without keeping it.
                    c.value()?;
                    self.result.truncated = true;
                    Position::NextRow { first: false }
                } else {
                    if !first {
                        out.push(b',');
                    }
                    self.row(c)?;
                    self.result.row_count += 1;
                    Position::NextRow { first: false }
                }
            }
            Position::End => {
                c.skip_white_space();
                if c.pos < c.buf.len() {
                    return invalid("unexpected text after the answer");
                }
                return Ok(false);
            }
        };
        Ok(true)
    }

    /// One row, cell by cell, each copied in its exact form.
    fn row(&mut self, c: &mut Cursor<'_>) -> Result<(), Stop> {
        c.expect(b'[', "a row must be an array")?;
        self.result.tables_json.push(b'[');
        let mut index = 0;
        while !c.close_or_separate(b']', index == 0)? {
            if index > 0 {
                self.result.tables_json.push(b',');
            }
            let dynamic = self.dynamic.get(index).copied().unwrap_or(false);
            self.cell(c, dynamic)?;
            index += 1;
        }
        self.result.tables_json.push(b']');
        Ok(())
    }

    fn cell(&mut self, c: &mut Cursor<'_>, dynamic: bool) -> Result<(), Stop> {
        let out = &mut self.result.tables_json;
        match c.peek()? {
            b'"' => {
                let text = c.string()?;
                let token = &c.buf[text.range.clone()];
                if dynamic {
                    // A dynamic cell holds JSON text; anything else stays the string it is.
                    let json = decode_string(token, text.escaped, &mut self.scratch);
                    let mut inner = Cursor::whole(json);
                    match inner.value_within(MAX_VALUE_DEPTH) {
                        Ok(range) if inner.at_end() => {
                            out.extend_from_slice(&json[range]);
                            return Ok(());
                        }
                        Err(Stop::TooDeep) => self.result.values_left_encoded += 1,
                        _ => {}
                    }
                }
                out.extend_from_slice(token);
            }
            b'[' | b'{' => {
                // Not what Log Analytics sends in a cell, but valid JSON: relayed compact.
                let value = c.value()?;
                let value: serde_json::Value = parse(&c.buf[value])?;
                serde_json::to_writer(&mut *out, &value)
                    .map_err(|e| Stop::Invalid(e.to_string().into()))?;
            }
            _ => {
                let scalar = c.scalar()?;
                out.extend_from_slice(&c.buf[scalar]);
            }
        }
        Ok(())
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

fn parse<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Result<T, Stop> {
    serde_json::from_slice(json).map_err(|e| Stop::Invalid(e.to_string().into()))
}

/// A validated string token's text: borrowed when it has no escapes, else decoded into
/// `scratch`.
fn decode_string<'a>(token: &'a [u8], escaped: bool, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let inner = &token[1..token.len() - 1];
    if !escaped {
        return inner;
    }
    scratch.clear();
    let mut i = 0;
    while let Some(n) = memchr::memchr(b'\\', inner.get(i..).unwrap_or_default()) {
        scratch.extend_from_slice(&inner[i..i + n]);
        i += n + 1;
        let Some(&escape) = inner.get(i) else { break };
        i += 1;
        let simple = match escape {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                // Validated: a surrogate escape is half of a pair.
                let first = inner.get(i..i + 4).and_then(hex4).unwrap_or(0xFFFD);
                i += 4;
                let code = if (0xD800..0xDC00).contains(&first) {
                    let second = inner.get(i + 2..i + 6).and_then(hex4).unwrap_or(0xDC00);
                    i += 6;
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else {
                    first
                };
                let ch = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                scratch.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            other => other, // `"`, `\\` and `/` stand for themselves
        };
        scratch.push(simple);
    }
    scratch.extend_from_slice(inner.get(i..).unwrap_or_default());
    scratch
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |code, &digit| {
        Some(code * 16 + char::from(digit).to_digit(16)?)
    })
}

/// A validated string token: its bytes with the quotes, and whether it has escapes.
struct Text {
    range: Range<usize>,
    escaped: bool,
}

/// Scans JSON tokens in a buffer that may stop anywhere: a token that reaches the buffer's end
/// is `Stop::More`, not an error.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The buffer holds the whole text: a number may end at its end.
    complete: bool,
}

impl<'a> Cursor<'a> {
    fn whole(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            complete: true,
        }
    }

    /// Only white space is left.
    fn at_end(&mut self) -> bool {
        self.skip_white_space();
        self.pos == self.buf.len()
    }

    fn skip_white_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not white space, not consumed.
    fn peek(&mut self) -> Result<u8, Stop> {
        self.skip_white_space();
        self.buf.get(self.pos).copied().ok_or(Stop::More)
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Stop> {
        if self.peek()? != byte {
            return invalid(what);
        }
        self.pos += 1;
        Ok(())
    }

    /// Inside an array or object: consumes `close` (true) or, unless `first`, the `,` before
    /// the next element (false).
    fn close_or_separate(&mut self, close: u8, first: bool) -> Result<bool, Stop> {
        let next = self.peek()?;
        if next == close {
            self.pos += 1;
            return Ok(true);
        }
        if !first {
            if next != b',' {
                return invalid(format!("expected ',' or '{}'", close as char));
            }
            self.pos += 1;
        }
        Ok(false)
    }

    /// Inside an object: the next key and its `:`, or `None` after the closing `}`.
    fn key(&mut self, first: bool) -> Result<Option<String>, Stop> {
        if self.close_or_separate(b'}', first)? {
            return Ok(None);
        }
        if self.peek()? != b'"' {
            return invalid("expected a key");
        }
        let key = self.string()?;
        self.expect(b':', "expected ':' after a key")?;
        parse(&self.buf[key.range]).map(Some)
    }

    /// A string token, validated: escapes, no raw control characters, UTF-8.
    fn string(&mut self) -> Result<Text, Stop> {
        let start = self.pos;
        let mut i = start + 1;
        let (mut escaped, mut ascii) = (false, true);
        loop {
            // Eight bytes at a time while none of them needs a look.
            while let Some(word) = self.buf.get(i..i + 8) {
                let mut bytes = [0; 8];
                bytes.copy_from_slice(word);
                if needs_a_look(u64::from_le_bytes(bytes)) {
                    break;
                }
                i += 8;
            }
            match *self.buf.get(i).ok_or(Stop::More)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i = self.escape(i)?;
                }
                0..0x20 => return invalid("control character in a string"),
                0x80.. => {
                    ascii = false;
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if !ascii && std::str::from_utf8(&self.buf[start + 1..i]).is_err() {
            return invalid("a string is not UTF-8");
        }
        self.pos = i + 1;
        Ok(Text {
            range: start..i + 1,
            escaped,
        })
    }

    /// Validates the escape at `i` (a backslash); returns where the string goes on.
    fn escape(&self, i: usize) -> Result<usize, Stop> {
        match self.buf.get(i + 1).ok_or(Stop::More)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
            b'u' => {
                // As serde_json (which reads SoCMate's output again) insists, a surrogate
                // escape must be half of a pair.
                match self.unicode_escape(i)? {
                    0xD800..0xDC00 => {
                        if self.buf.get(i + 6..i + 8).ok_or(Stop::More)? != b"\\u"
                            || !(0xDC00..0xE000).contains(&self.unicode_escape(i + 6)?)
                        {
                            return invalid("a lone surrogate escape in a string");
                        }
                        Ok(i + 12)
                    }
                    0xDC00..0xE000 => invalid("a lone surrogate escape in a string"),
                    _ => Ok(i + 6),
                }
            }
            _ => invalid("invalid escape in a string"),
        }
    }

    /// The code of the `\uXXXX` escape at `at`.
    fn unicode_escape(&self, at: usize) -> Result<u32, Stop> {
        let digits = self.buf.get(at + 2..at + 6).ok_or(Stop::More)?;
        hex4(digits).ok_or(Stop::Invalid("invalid \\u escape in a string".into()))
    }

    /// A number, `true`, `false` or `null`.
    fn scalar(&mut self) -> Result<Range<usize>, Stop> {
        let start = self.pos;
        let word: &[u8] = match self.buf[start] {
            b'-' | b'0'..=b'9' => return self.number(),
            b't' => b"true",
            b'f' => b"false",
            b'n' => b"null",
            _ => return invalid("expected a value"),
        };
        let end = start + word.len();
        let available = &self.buf[start..end.min(self.buf.len())];
        if !word.starts_with(available) {
            return invalid("expected a value");
        }
        if available.len() < word.len() {
            return Err(Stop::More);
        }
        self.pos = end;
        Ok(start..end)
    }

    /// A number as JSON writes it: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<Range<usize>, Stop> {
        let start = self.pos;
        let mut i = start;
        if self.buf[i] == b'-' {
            i += 1;
        }
        match self.buf.get(i).ok_or(Stop::More)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = self.digits(i),
            _ => return invalid("invalid number"),
        }
        if self.buf.get(i) == Some(&b'.') {
            i = self.at_least_one_digit(i + 1)?;
        }
        if let Some(b'e' | b'E') = self.buf.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = self.buf.get(i) {
                i += 1;
            }
            i = self.at_least_one_digit(i)?;
        }
        if i == self.buf.len() && !self.complete {
            // More digits may follow in the next chunk.
            return Err(Stop::More);
        }
        self.pos = i;
        Ok(start..i)
    }

    fn digits(&self, mut i: usize) -> usize {
        while self.buf.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    }

    fn at_least_one_digit(&self, i: usize) -> Result<usize, Stop> {
        match self.buf.get(i) {
            None => Err(Stop::More),
            Some(b) if b.is_ascii_digit() => Ok(self.digits(i)),
            Some(_) => invalid("invalid number"),
        }
    }

    /// Any JSON value, validated; returns its bytes' range.
    fn value(&mut self) -> Result<Range<usize>, Stop> {
        self.value_within(usize::MAX)
    }

    /// Any JSON value nesting at most `depth` arrays and objects, validated. Iterative, so
    /// nesting costs memory (one byte a level) and not stack.
    fn value_within(&mut self, depth: usize) -> Result<Range<usize>, Stop> {
        self.skip_white_space();
        let start = self.pos;
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value.
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                bracket @ (b'[' | b'{') => {
                    if open.len() == depth {
                        return Err(Stop::TooDeep);
                    }
                    self.pos += 1;
                    let close = if bracket == b'[' { b']' } else { b'}' };
                    if self.peek()? == close {
                        self.pos += 1;
                    } else {
                        open.push(close);
                        if close == b'}' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                _ => {
                    self.scalar()?;
                }
            }
            // What follows a value: the end of its containers, or the next element.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(start..self.pos);
                };
                if !self.close_or_separate(close, false)? {
                    if close == b'}' {
                        self.member_key()?;
                    }
                    break;
                }
                open.pop();
            }
        }
    }

    /// An object member's key and its `:`, validated and skipped.
    fn member_key(&mut self) -> Result<(), Stop> {
        if self.peek()? != b'"' {
            return invalid("expected a key");
        }
        self.string()?;
        self.expect(b':', "expected ':' after a key")
    }
}

/// Whether any of the eight bytes in `word` is `"`, `\\`, a control character or not ASCII
/// (the classic "has a zero byte" test on the word XOR each byte sought).
fn needs_a_look(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | below_space
        | (word & HIGH))
        != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transcodes `wire` whole and in chunks of several sizes (down to one byte, so that every
    /// step is cut everywhere); all must agree.
    fn run(wire: &str, cap: usize) -> Transcoded {
        let whole = try_run(wire.as_bytes(), cap, wire.len().max(1)).unwrap();
        for size in [1, 2, 3, 7, 64] {
            let chunked = try_run(wire.as_bytes(), cap, size).unwrap();
            assert_eq!(chunked.tables_json, whole.tables_json, "chunks of {size}");
            assert_eq!(chunked.row_count, whole.row_count);
            assert_eq!(chunked.values_left_encoded, whole.values_left_encoded);
            assert_eq!(chunked.error, whole.error);
        }
        whole
    }

    fn try_run(wire: &[u8], cap: usize, chunk: usize) -> Result<Transcoded, TranscodeError> {
        let mut t = Transcoder::new(cap, 0);
        for piece in wire.chunks(chunk) {
            t.feed(piece)?;
        }
        t.finish()
    }

    #[test]
    fn values_keep_their_exact_types() {
        let wire = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"l","type":"long"},{"name":"d","type":"decimal"},
            {"name":"r","type":"real"},{"name":"n","type":"real"},{"name":"j","type":"dynamic"},{"name":"b","type":"bool"},
            {"name":"z","type":"string"}],
            "rows":[[9223372036854775807,"79228162514264337593543950335",1.7976931348623157e308,"NaN","{\"a\":[1,2]}",true,null],
                    [-9223372036854775808,"0.1",0.1,"-Infinity","not json",false,"é\"\n\u00e9"],
                    [18446744073709551616, "1", -0.0, "Infinity", "\"\\ud83d\\ude00\"", true, ""]]}]}"#;
        let t = run(wire, 100);
        let out = String::from_utf8(t.tables_json).unwrap();
        assert_eq!(
            out,
            r#"[{"name":"PrimaryResult","columns":[{"name":"l","type":"long"},{"name":"d","type":"decimal"},{"name":"r","type":"real"},{"name":"n","type":"real"},{"name":"j","type":"dynamic"},{"name":"b","type":"bool"},{"name":"z","type":"string"}],"rows":[[9223372036854775807,"79228162514264337593543950335",1.7976931348623157e308,"NaN",{"a":[1,2]},true,null],[-9223372036854775808,"0.1",0.1,"-Infinity","not json",false,"é\"\n\u00e9"],[18446744073709551616,"1",-0.0,"Infinity","\ud83d\ude00",true,""]]}]"#,
            "numbers keep their digits, even past u64; strings keep their escapes"
        );
        assert_eq!(t.row_count, 3);
        assert!(!t.truncated);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[0]["rows"][0][0].as_i64(), Some(i64::MAX));
        assert_eq!(parsed[0]["rows"][2][4], "😀", "a surrogate pair decodes");
    }

    #[test]
    fn dynamic_values_nested_too_deep_stay_their_string_and_are_counted() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let quoted = |text: &str| serde_json::to_string(text).unwrap();
        // Brackets inside strings are text, not nesting.
        let in_strings = format!("[{}]", quoted(&"[".repeat(500)));
        let wire = format!(
            r#"{{"tables":[{{"name":"t","columns":[{{"name":"j","type":"dynamic"}}],"rows":[[{}],[{}],[{}],["\"\ud83d\ude00\""]]}}]}}"#,
            quoted(&nested(MAX_VALUE_DEPTH)),
            quoted(&nested(MAX_VALUE_DEPTH + 1)),
            quoted(&in_strings),
        );
        let t = run(&wire, 100);
        let out: serde_json::Value = serde_json::from_slice(&t.tables_json).unwrap();
        let rows = &out[0]["rows"];
        assert!(
            rows[0][0].is_array(),
            "the deepest allowed is relayed as JSON"
        );
        assert_eq!(
            rows[1][0],
            nested(MAX_VALUE_DEPTH + 1),
            "one deeper stays a string"
        );
        assert!(rows[2][0].is_array());
        assert_eq!(
            rows[3][0], "😀",
            "a surrogate pair in a dynamic cell decodes"
        );
        assert_eq!(t.values_left_encoded, 1);
        let deep = nested(1_000_000);
        let mut deep = Cursor::whole(deep.as_bytes());
        assert!(matches!(
            deep.value_within(MAX_VALUE_DEPTH),
            Err(Stop::TooDeep)
        ));
    }

    #[test]
    fn the_cap_spans_tables_and_the_rest_is_flagged() {
        let wire = r#"{"tables":[{"name":"a","columns":[{"name":"x","type":"long"}],"rows":[[1],[2],[3]]},
            {"name":"b","columns":[{"name":"x","type":"long"}],"rows":[[4],[5]]}],
            "error":{"code":"PartialError"},"statistics":{"query":{"executionTime":0.1}},"render":{"a":[{}]}}"#;
        let t = run(wire, 4);
        assert_eq!(
            String::from_utf8(t.tables_json).unwrap(),
            r#"[{"name":"a","columns":[{"name":"x","type":"long"}],"rows":[[1],[2],[3]]},{"name":"b","columns":[{"name":"x","type":"long"}],"rows":[[4]]}]"#
        );
        assert!(t.truncated);
        assert_eq!(t.row_count, 4);
        assert_eq!(t.error.unwrap()["code"], "PartialError");
        assert_eq!(
            t.statistics.unwrap().get(),
            r#"{"query":{"executionTime":0.1}}"#
        );
    }

    #[test]
    fn cells_that_are_arrays_or_objects_are_relayed_compact() {
        let wire = r#"{"tables":[{"name":"a","columns":[{"name":"x","type":"dynamic"}],"rows":[[ [1, {"b" : [true]}] ],[{}],[[]]]}]}"#;
        assert_eq!(
            String::from_utf8(run(wire, 10).tables_json).unwrap(),
            r#"[{"name":"a","columns":[{"name":"x","type":"dynamic"}],"rows":[[[1,{"b":[true]}]],[{}],[[]]]}]"#
        );
    }

    #[test]
    fn output_taken_in_pieces_joins_up_to_the_whole() {
        let wire = r#"{"tables":[{"name":"a","columns":[{"name":"x","type":"dynamic"}],"rows":[["[1]"],["{}"],[2],[3]]}]}"#;
        let whole = run(wire, 10).tables_json;
        let mut t = Transcoder::new(10, 0);
        let mut joined = Vec::new();
        for piece in wire.as_bytes().chunks(9) {
            t.feed(piece).unwrap();
            joined.extend(t.take_output(0));
            assert_eq!(t.output_len(), 0);
        }
        joined.extend(t.finish().unwrap().tables_json);
        assert_eq!(joined, whole);
    }

    #[test]
    fn empty_answers() {
        assert_eq!(run(r#"{"tables":[]}"#, 10).tables_json, b"[]");
        assert_eq!(
            String::from_utf8(
                run(
                    r#" {"tables":[{"name":"a","columns":[],"rows":[[]]}]} "#,
                    10
                )
                .tables_json
            )
            .unwrap(),
            r#"[{"name":"a","columns":[],"rows":[[]]}]"#
        );
        let t = run("{}", 10);
        assert!(!t.saw_tables);
        assert_eq!(t.tables_json, b"[]");
    }

    #[test]
    fn malformed_answers_fail_wherever_the_chunks_are_cut() {
        let table = r#"{"name":"a","columns":[{"name":"x","type":"long"}],"rows":"#;
        for wire in [
            String::new(),
            r#"{"tables":[{"rows":[[1,"#.to_string(),
            format!(r#"{{"tables":[{table}[[1,]]]}}"#),
            format!(r#"{{"tables":[{table}[[01]]]}}"#),
            format!(r#"{{"tables":[{table}[[1.]]]}}"#),
            format!(r#"{{"tables":[{table}[[tru]]]}}"#),
            format!(r#"{{"tables":[{table}[[nul,1]]]}}"#),
            format!(r#"{{"tables":[{table}[["a\x"]]]}}"#),
            format!(r#"{{"tables":[{table}[["\u12g4"]]]}}"#),
            format!(r#"{{"tables":[{table}[["\ud800"]]]}}"#),
            format!(r#"{{"tables":[{table}[["\ud800\u0041"]]]}}"#),
            format!(r#"{{"tables":[{table}[["\udc00"]]]}}"#),
            format!("{{\"tables\":[{table}[[\"tab\there\"]]]}}"),
            format!(r#"{{"tables":[{table}[1]]}}"#),
            format!(r#"{{"tables":[{table}[[1]]]}}]}}"#),
            format!(r#"{{"tables":[{table}[[1]]}}]}} x"#),
            r#"{"tables":[],}"#.to_string(),
            r#"{"tables":[],"error":{"a" 1}}"#.to_string(),
            r#"{"tables":[{"name":1}]}"#.to_string(),
            r#"{"tables":{}}"#.to_string(),
            r#"[]"#.to_string(),
        ] {
            for size in [1, 5, wire.len().max(1)] {
                assert!(
                    try_run(wire.as_bytes(), 10, size).is_err(),
                    "{wire:?} in chunks of {size}"
                );
            }
        }
        let not_utf8 = [br#"{"tables":[{"name":"a"#.as_slice(), &[0xff], br#""}]}"#].concat();
        assert!(try_run(&not_utf8, 10, 4).is_err());
        let error = try_run(br#"{"tables":[{"rows":[[1,]]}]}"#, 10, 100)
            .err()
            .map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("expected a value at byte 23"));
    }

    #[test]
    fn a_value_spread_over_many_chunks_is_rescanned_a_few_times_not_once_a_chunk() {
        let long = "x".repeat(1 << 20);
        let wire = format!(
            r#"{{"tables":[{{"name":"a","columns":[{{"name":"s","type":"string"}}],"rows":[["{long}"]]}}]}}"#
        );
        let mut t = Transcoder::new(10, 0);
        for piece in wire.as_bytes().chunks(1024) {
            t.feed(piece).unwrap();
        }
        assert!(t.scans < 60, "{} scans for 1,025 chunks", t.scans);
        let t = t.finish().unwrap();
        assert_eq!(t.row_count, 1);
        assert!(
            t.tables_json
                .ends_with(format!(r#"[["{long}"]]}}]"#).as_bytes())
        );
    }

    proptest::proptest! {
        /// Any answer serde_json would write, cut into chunks anywhere, transcodes to the value
        /// serde_json reads from it, with dynamic cells decoded.
        #[test]
        fn any_answer_in_any_chunks_reads_as_serde_json_reads_it(
            rows in proptest::collection::vec(
                (any_scalar(), any_scalar(), any_scalar(), any_scalar()), 0..20),
            chunk in 1usize..300,
        ) {
            use serde_json::{Value, json};
            let wire_rows: Vec<Value> = rows
                .iter()
                .map(|(a, b, c, d)| json!([a, b, c, d.to_string()]))
                .collect();
            let wire = json!({"tables": [{"name": "PrimaryResult",
                "columns": [{"name": "a", "type": "long"}, {"name": "b", "type": "string"},
                            {"name": "c", "type": "real"}, {"name": "d", "type": "dynamic"}],
                "rows": wire_rows}], "statistics": {"query": {}}});
            let wire = serde_json::to_vec_pretty(&wire).unwrap();
            let out = try_run(&wire, usize::MAX, chunk).unwrap();
            let expected: Vec<Value> =
                rows.iter().map(|(a, b, c, d)| json!([a, b, c, d])).collect();
            // Both read by the same (not quite exact) float parser from the same digits.
            let expected: Value = serde_json::from_str(&Value::Array(expected).to_string()).unwrap();
            let out: Value = serde_json::from_slice(&out.tables_json).unwrap();
            proptest::prop_assert_eq!(&out[0]["rows"], &expected);
        }
    }

    fn any_scalar() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ]
    }
}

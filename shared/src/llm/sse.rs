//! An incremental `text/event-stream` decoder (the WHATWG server-sent events format), for the
//! streaming answers of OpenAI-compatible servers and Gemini's `?alt=sse`.
//!
//! Bytes arrive in arbitrary pieces (a UTF-8 character or a line may be split between two);
//! [`SseDecoder::push`] buffers the incomplete tail and yields each complete event once.

/// One event: its `event:` name (empty when absent) and its `data:` lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, or empty.
    pub event: String,
    /// The `data:` lines of the event, joined with `\n`.
    pub data: String,
}

/// Decodes a byte stream into [`Event`]s.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
    max_event_bytes: usize,
}

/// An event grew past the decoder's limit without ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server-sent event larger than {0} bytes")]
pub struct EventTooLarge(pub usize);

impl SseDecoder {
    /// A decoder refusing events (or lines) larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            ..Self::default()
        }
    }

    /// Feeds `bytes` and returns the events they complete, in order.
    ///
    /// # Errors
    /// [`EventTooLarge`] when a line or an event exceeds the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            let line = &self.buffer[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            let pending: usize = self.data.iter().map(String::len).sum();
            if pending > self.max_event_bytes {
                return Err(EventTooLarge(self.max_event_bytes));
            }
        }
        self.buffer.drain(..start);
        if self.buffer.len() > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        Ok(events)
    }

    /// Ends the stream: an event not yet closed by a blank line is dispatched (servers often
    /// omit the final blank line).
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest).into_owned();
            let line = line.strip_suffix('\r').unwrap_or(&line).to_owned();
            if let Some(event) = self.line(&line) {
                return Some(event);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_owned()),
            "event" => value.clone_into(&mut self.event),
            _ => {} // id, retry and unknown fields do not matter here
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return None;
        }
        let data = std::mem::take(&mut self.data).join("\n");
        Some(Event { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn decodes_events_split_anywhere() {
        let stream =
            "data: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: done\ndata: x\ndata: y\n\ndata: é\n\n";
        let bytes = stream.as_bytes();
        for split in 1..bytes.len() {
            let mut d = SseDecoder::new(1024);
            let mut events = d.push(&bytes[..split]).unwrap();
            events.extend(d.push(&bytes[split..]).unwrap());
            events.extend(d.finish());
            assert_eq!(
                data(&events),
                ["{\"a\":1}", "x\ny", "é"],
                "split at {split}"
            );
            assert_eq!(events[1].event, "done");
        }
    }

    #[test]
    fn last_event_without_blank_line_is_kept() {
        let mut d = SseDecoder::new(1024);
        assert!(d.push(b"data: [DONE]").unwrap().is_empty());
        assert_eq!(d.finish().map(|e| e.data), Some("[DONE]".to_owned()));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn field_without_space_and_empty_data() {
        let mut d = SseDecoder::new(1024);
        let events = d.push(b"data:abc\n\ndata\n\n").unwrap();
        assert_eq!(data(&events), ["abc", ""]);
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut d = SseDecoder::new(8);
        assert_eq!(d.push(b"0123456789"), Err(EventTooLarge(8)));
        let mut d = SseDecoder::new(8);
        assert_eq!(d.push(b"data: 12345\ndata: 67890\n"), Err(EventTooLarge(8)));
    }
}

//! A streaming reader of `multipart/form-data` bodies (RFC 7578 over RFC 2046 §5.1), for POST
//! Object: it reads the fields that come before the `file` part — at most [`MAX_PRE_DATA`]
//! bytes, S3's limit — and stops at the first byte of the file, so that the caller can check
//! the form's signature and policy before any of the file is read. The file is then read as a
//! stream of chunks ending at the part's closing delimiter.
//!
//! It must never hold more than the fields plus one body chunk before the file is asked for,
//! never read past the fields on its own, and never log or `Debug`-print field values: they
//! carry signatures, policies and (SSE-C) keys.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use memchr::memmem;

/// S3's limit on everything before the file's content: "The form data and boundaries
/// (excluding the contents of the file) cannot exceed 20KB", enforced as 20,480 bytes
/// (`MaxPostPreDataLengthBytes` in S3's `MaxPostPreDataLengthExceeded` answer).
pub const MAX_PRE_DATA: usize = 20 * 1024;

/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// The request body, as chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// Why the body could not be read (the client went away, or sent less than it announced).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Why a form could not be read; each maps to one S3 error in `post_object`.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// Not well-formed multipart/form-data (`MalformedPOSTRequest`).
    #[error("malformed multipart/form-data: {0}")]
    Malformed(&'static str),
    /// The fields before the file exceed [`MAX_PRE_DATA`] (`MaxPostPreDataLengthExceeded`).
    #[error("the form fields before the file exceed {MAX_PRE_DATA} bytes")]
    PreDataTooLarge,
    /// The form closed without a part named `file`.
    #[error("the form has no file part")]
    NoFile,
    /// The body stream failed.
    #[error("the request body could not be read: {0}")]
    Body(String),
}

/// One form field before the file, in the order sent. No `Debug`: values can be secrets.
pub struct Field {
    /// The name as sent (S3 matches names without regard to case).
    pub name: String,
    pub value: String,
}

/// The headers of the `file` part.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FilePart {
    /// The `filename` parameter as sent (`None` when the part has none).
    pub filename: Option<String>,
}

/// Whether a Content-Type value is `multipart/form-data` (in any case, with any parameters,
/// and with a `+suffix` too, which `s3s`'s media-type parser would also take for a form).
pub fn is_form_data(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let (essence, _suffix) = media
        .iter()
        .position(|b| *b == b'+')
        .map_or((media, &[][..]), |at| media.split_at(at));
    essence.eq_ignore_ascii_case(b"multipart/form-data")
}

/// The boundary of a `multipart/form-data` Content-Type, if the media type is that and the
/// boundary is valid; `Err` names what is wrong.
pub fn boundary(content_type: &str) -> Result<String, &'static str> {
    if !is_form_data(content_type.as_bytes()) {
        return Err("the Content-Type is not multipart/form-data");
    }
    let params = content_type.split(';').skip(1);
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"').ok_or("unterminated boundary")?,
                None => value,
            };
            if value.is_empty() || value.len() > MAX_BOUNDARY || !value.is_ascii() {
                return Err("the boundary must be 1 to 70 ASCII characters");
            }
            return Ok(value.to_owned());
        }
    }
    Err("the Content-Type has no boundary")
}

/// Reads one form body: [`FormReader::read_fields`], then the file with
/// [`FormReader::poll_file_chunk`], then [`FormReader::poll_drain`] for what follows it.
pub struct FormReader {
    body: BodyStream,
    buf: BytesMut,
    /// `CRLF -- boundary`: what ends every part.
    delimiter: Vec<u8>,
    finder: memmem::Finder<'static>,
    /// Bytes taken out of `buf` so far, counting the CRLF the reader puts before the body.
    consumed: usize,
    body_ended: bool,
    file_ended: bool,
}

impl FormReader {
    /// A reader of `body` with `boundary` (from [`boundary`]).
    pub fn new(body: BodyStream, boundary: &str) -> FormReader {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first delimiter may open the body without a CRLF before it; reading the body as
        // if it began with one finds it like every other.
        let mut buf = BytesMut::with_capacity(8 * 1024);
        buf.extend_from_slice(b"\r\n");
        FormReader {
            body,
            buf,
            finder: memmem::Finder::new(&delimiter).into_owned(),
            delimiter,
            consumed: 0,
            body_ended: false,
            file_ended: false,
        }
    }

    /// Reads the fields before the part named `file` and that part's headers, leaving the
    /// reader at the file's first byte. The preamble, parts that are not `form-data` fields
    /// with a name, and part headers other than Content-Disposition are skipped, but count
    /// towards [`MAX_PRE_DATA`].
    pub async fn read_fields(&mut self) -> Result<(Vec<Field>, FilePart), FormError> {
        let mut fields = Vec::new();
        let first = self.find_before_file(&self.delimiter.clone()).await?;
        self.consume(first + self.delimiter.len());
        loop {
            // After a delimiter: `--` closes the form; else optional padding, then CRLF.
            let line_end = self.find_before_file(b"\r\n").await?;
            let line = &self.buf[..line_end];
            if line.starts_with(b"--") {
                return Err(FormError::NoFile);
            }
            if !line.iter().all(|b| *b == b' ' || *b == b'\t') {
                return Err(FormError::Malformed("text follows a boundary on its line"));
            }
            self.consume(line_end + 2);
            let headers = if self.starts_with_crlf().await? {
                self.consume(2);
                PartHeaders::default()
            } else {
                let end = self.find_before_file(b"\r\n\r\n").await?;
                let parsed = parse_part_headers(&self.buf[..end])?;
                self.consume(end + 4);
                parsed
            };
            if headers.is_file() {
                return Ok((
                    fields,
                    FilePart {
                        filename: headers.filename,
                    },
                ));
            }
            let end = self.find_before_file(&self.delimiter.clone()).await?;
            if let (true, Some(name)) = (headers.form_data, headers.name) {
                let value = String::from_utf8(self.buf[..end].to_vec())
                    .map_err(|_| FormError::Malformed("a field value is not UTF-8"))?;
                fields.push(Field { name, value });
            }
            self.consume(end + self.delimiter.len());
        }
    }

    /// The next chunk of the file's content; `None` once its closing delimiter is read.
    /// A body that ends before it is `Malformed`: a file is never taken for whole unless its
    /// end was seen.
    pub fn poll_file_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, FormError>>> {
        loop {
            if self.file_ended {
                return Poll::Ready(None);
            }
            if let Some(at) = self.finder.find(&self.buf) {
                self.file_ended = true;
                let chunk = self.buf.split_to(at).freeze();
                self.buf.advance(self.delimiter.len());
                return Poll::Ready((!chunk.is_empty()).then_some(Ok(chunk)));
            }
            // Everything but a possible beginning of the delimiter is file content.
            let safe = self
                .buf
                .len()
                .saturating_sub(self.delimiter.len().saturating_sub(1));
            if safe > 0 {
                return Poll::Ready(Some(Ok(self.buf.split_to(safe).freeze())));
            }
            match ready!(self.poll_fill(cx)) {
                Ok(true) => {}
                Ok(false) => {
                    self.file_ended = true;
                    return Poll::Ready(Some(Err(FormError::Malformed(
                        "the body ended inside the file part",
                    ))));
                }
                Err(e) => {
                    self.file_ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    /// Reads and discards the rest of the body, up to `*budget` more bytes (decremented as
    /// they are read). `true` once the body has ended; `false` if the budget ran out first or
    /// the body failed — the connection must then be closed, not reused.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>, budget: &mut usize) -> Poll<bool> {
        loop {
            let held = self.buf.len();
            self.buf.clear();
            *budget = budget.saturating_sub(held);
            if self.body_ended {
                return Poll::Ready(true);
            }
            if *budget == 0 {
                return Poll::Ready(false);
            }
            match ready!(self.poll_fill(cx)) {
                Ok(_) => {}
                Err(_) => return Poll::Ready(false),
            }
        }
    }

    /// Whether the whole body has been read.
    pub fn body_ended(&self) -> bool {
        self.body_ended
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.consumed += n;
    }

    /// Appends the next body chunk to `buf`: `Ok(false)` at the end of the body.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, FormError>> {
        if self.body_ended {
            return Poll::Ready(Ok(false));
        }
        match ready!(self.body.poll_next_unpin(cx)) {
            Some(Ok(chunk)) => {
                self.buf.extend_from_slice(&chunk);
                Poll::Ready(Ok(true))
            }
            Some(Err(e)) => Poll::Ready(Err(FormError::Body(e.to_string()))),
            None => {
                self.body_ended = true;
                Poll::Ready(Ok(false))
            }
        }
    }

    async fn fill(&mut self) -> Result<bool, FormError> {
        futures::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Where `needle` starts in `buf`, reading more as needed — but never past
    /// [`MAX_PRE_DATA`] of the body: what is looked for here comes before the file.
    async fn find_before_file(&mut self, needle: &[u8]) -> Result<usize, FormError> {
        // The CRLF put before the body does not count.
        let limit = MAX_PRE_DATA + 2;
        loop {
            if let Some(at) = memmem::find(&self.buf, needle) {
                if self.consumed + at + needle.len() > limit {
                    return Err(FormError::PreDataTooLarge);
                }
                return Ok(at);
            }
            if self.consumed + self.buf.len() >= limit + needle.len() {
                return Err(FormError::PreDataTooLarge);
            }
            if !self.fill().await? {
                return Err(FormError::Malformed(
                    "the body ended inside the form fields",
                ));
            }
        }
    }

    async fn starts_with_crlf(&mut self) -> Result<bool, FormError> {
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(FormError::Malformed(
                    "the body ended inside the form fields",
                ));
            }
        }
        Ok(self.buf.starts_with(b"\r\n"))
    }
}

/// What the headers of one part say.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PartHeaders {
    /// The Content-Disposition type is `form-data`.
    form_data: bool,
    name: Option<String>,
    filename: Option<String>,
}

impl PartHeaders {
    /// S3 takes the `form-data` part named `file` (in any case) for the file, with or
    /// without a `filename`.
    fn is_file(&self) -> bool {
        self.form_data
            && self
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case("file"))
    }
}

/// Parses a part's header block (the lines before the blank line).
pub(crate) fn parse_part_headers(block: &[u8]) -> Result<PartHeaders, FormError> {
    let text = std::str::from_utf8(block)
        .map_err(|_| FormError::Malformed("part headers are not UTF-8"))?;
    let mut out = PartHeaders::default();
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(FormError::Malformed("a part header line has no colon"));
        };
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            out = parse_disposition(value)?;
        }
    }
    Ok(out)
}

/// Parses `form-data; name="…"; filename="…"` (RFC 2183, RFC 7578 §4.2). Quoted values take
/// `\"` and `\\` as escapes and keep any other backslash, since browsers send Windows paths
/// unescaped.
pub(crate) fn parse_disposition(value: &str) -> Result<PartHeaders, FormError> {
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    let mut out = PartHeaders {
        form_data: kind.trim().eq_ignore_ascii_case("form-data"),
        ..Default::default()
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            return Ok(out);
        }
        let eq = rest.find('=').ok_or(FormError::Malformed(
            "a Content-Disposition parameter has no value",
        ))?;
        let attr = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' if quoted[i + 1..].starts_with(['"', '\\']) => {
                        if let Some((_, escaped)) = chars.next() {
                            v.push(escaped);
                        }
                    }
                    c => v.push(c),
                }
            }
            let end = end.ok_or(FormError::Malformed("an unterminated quoted parameter"))?;
            rest = &quoted[end..];
            v
        } else {
            let end = rest.find(';').unwrap_or(rest.len());
            let v = rest[..end].trim().to_owned();
            rest = &rest[end..];
            v
        };
        match attr.as_str() {
            "name" => out.name = Some(value),
            "filename" => out.filename = Some(value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "XyZ-boundary";

    fn body_of(chunks: Vec<Vec<u8>>) -> BodyStream {
        Box::pin(futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BodyError>(Bytes::from(c))),
        ))
    }

    /// Splits `data` into chunks of `size` bytes.
    fn chunked(data: &[u8], size: usize) -> Vec<Vec<u8>> {
        data.chunks(size).map(<[u8]>::to_vec).collect()
    }

    fn form(fields: &[(&str, &str)], filename: Option<&str>, file: &[u8], after: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.extend_from_slice(
                format!(
                    "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        let filename = filename
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        out.extend_from_slice(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"file\"{filename}\r\nContent-Type: image/png\r\n\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(file);
        out.extend_from_slice(format!("\r\n--{B}{after}").as_bytes());
        out
    }

    async fn read_all(reader: &mut FormReader) -> Result<Vec<u8>, FormError> {
        let mut file = Vec::new();
        while let Some(chunk) = futures::future::poll_fn(|cx| reader.poll_file_chunk(cx)).await {
            file.extend_from_slice(&chunk?);
        }
        Ok(file)
    }

    #[tokio::test]
    async fn fields_and_file_are_read_whatever_the_chunking() {
        // A file that holds near-misses of the delimiter: CRLF, "--", the boundary without CRLF.
        let mut file = format!("\r\n-\r\n--{}\r\n-{B}", &B[..B.len() - 1]).into_bytes();
        file.extend_from_slice(&[0u8, 255, 13, 10, 45, 45]);
        file.extend((0..5000u32).map(|i| (i % 251) as u8));
        let body = form(
            &[("key", "a/${filename}"), ("X-Amz-Meta-Note", "hé")],
            Some("C:\\dir\\pic.png"),
            &file,
            "\r\nContent-Disposition: form-data; name=\"submit\"\r\n\r\nGo\r\n--XyZ-boundary--\r\n",
        );
        for size in [1, 2, 3, 7, 64, 1000, body.len()] {
            let mut r = FormReader::new(body_of(chunked(&body, size)), B);
            let (fields, part) = r.read_fields().await.unwrap();
            let got: Vec<(&str, &str)> = fields
                .iter()
                .map(|f| (f.name.as_str(), f.value.as_str()))
                .collect();
            assert_eq!(got, [("key", "a/${filename}"), ("X-Amz-Meta-Note", "hé")]);
            assert_eq!(part.filename.as_deref(), Some("C:\\dir\\pic.png"));
            assert_eq!(read_all(&mut r).await.unwrap(), file, "chunks of {size}");
            let mut budget = 1 << 20;
            assert!(futures::future::poll_fn(|cx| r.poll_drain(cx, &mut budget)).await);
            assert!(r.body_ended());
        }
    }

    #[tokio::test]
    async fn an_empty_file_and_a_preamble_are_fine() {
        let mut body = b"this is a preamble\r\n".to_vec();
        body.extend_from_slice(&form(&[("key", "k")], None, b"", "--\r\n"));
        let mut r = FormReader::new(body_of(chunked(&body, 5)), B);
        let (fields, part) = r.read_fields().await.unwrap();
        assert_eq!(fields.len(), 1);
        assert_eq!(part.filename, None);
        assert_eq!(read_all(&mut r).await.unwrap(), b"");
    }

    #[tokio::test]
    async fn the_reader_stops_at_the_file_and_reads_no_further() {
        let head = form(&[("key", "k")], Some("f"), b"", "");
        let head = &head[..head.len() - format!("\r\n--{B}").len()];
        // The body would go on for ever; the reader must not ask for more than the head.
        let endless = futures::stream::iter(std::iter::once(Ok::<_, BodyError>(
            Bytes::copy_from_slice(head),
        )))
        .chain(futures::stream::repeat_with(
            || -> Result<Bytes, BodyError> { panic!("the file was read before it was asked for") },
        ));
        let mut r = FormReader::new(Box::pin(endless), B);
        let (fields, _) = r.read_fields().await.unwrap();
        assert_eq!(fields[0].value, "k");
    }

    #[tokio::test]
    async fn fields_over_20_kib_are_refused_without_reading_on() {
        let big = "v".repeat(MAX_PRE_DATA);
        let body = form(&[("x-ignore-pad", &big)], Some("f"), b"data", "--");
        let mut r = FormReader::new(body_of(chunked(&body, 4096)), B);
        assert!(matches!(
            r.read_fields().await,
            Err(FormError::PreDataTooLarge)
        ));
        // Just under the limit passes: the whole head is counted, boundaries and headers too.
        let head_without_value =
            form(&[("x-ignore-pad", "")], Some("f"), b"", "").len() - format!("\r\n--{B}").len();
        let fits = "v".repeat(MAX_PRE_DATA - head_without_value);
        let body = form(&[("x-ignore-pad", &fits)], Some("f"), b"data", "--");
        let mut r = FormReader::new(body_of(chunked(&body, 4096)), B);
        assert!(r.read_fields().await.is_ok());
        let over = "v".repeat(MAX_PRE_DATA - head_without_value + 1);
        let body = form(&[("x-ignore-pad", &over)], Some("f"), b"data", "--");
        let mut r = FormReader::new(body_of(chunked(&body, 4096)), B);
        assert!(matches!(
            r.read_fields().await,
            Err(FormError::PreDataTooLarge)
        ));
        // A body with no delimiter at all is refused once it passes the limit.
        let garbage = vec![b'g'; 3 * MAX_PRE_DATA];
        let mut r = FormReader::new(body_of(chunked(&garbage, 1000)), B);
        assert!(matches!(
            r.read_fields().await,
            Err(FormError::PreDataTooLarge)
        ));
    }

    #[tokio::test]
    async fn malformed_forms_are_refused() {
        // No file part.
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--{B}--\r\n"
        );
        let mut r = FormReader::new(body_of(vec![body.into_bytes()]), B);
        assert!(matches!(r.read_fields().await, Err(FormError::NoFile)));
        // Cut inside the fields.
        let body = format!("--{B}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk");
        let mut r = FormReader::new(body_of(vec![body.into_bytes()]), B);
        assert!(matches!(
            r.read_fields().await,
            Err(FormError::Malformed(_))
        ));
        // Cut inside the file: never a whole file.
        let body = form(&[("key", "k")], Some("f"), b"data", "--");
        let cut = body[..body.len() - 10].to_vec();
        let mut r = FormReader::new(body_of(vec![cut]), B);
        r.read_fields().await.unwrap();
        assert!(matches!(
            read_all(&mut r).await,
            Err(FormError::Malformed(_))
        ));
        // Garbage after a boundary on its line.
        let body = format!("--{B}junk\r\n\r\n");
        let mut r = FormReader::new(body_of(vec![body.into_bytes()]), B);
        assert!(matches!(
            r.read_fields().await,
            Err(FormError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn drain_gives_up_past_its_budget() {
        let body = form(&[("key", "k")], Some("f"), b"data", "\r\n");
        let mut chunks = chunked(&body, 16);
        chunks.extend(std::iter::repeat_n(vec![b'x'; 1000], 100));
        let mut r = FormReader::new(body_of(chunks), B);
        r.read_fields().await.unwrap();
        assert_eq!(read_all(&mut r).await.unwrap(), b"data");
        let mut budget = 10_000;
        assert!(!futures::future::poll_fn(|cx| r.poll_drain(cx, &mut budget)).await);
        assert!(!r.body_ended());
    }

    #[test]
    fn boundaries_are_taken_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Ok("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"a b:c\"").as_deref(),
            Ok("a b:c")
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary("multipart/form-data; boundary=").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
        assert!(boundary("text/plain; boundary=abc").is_err());
        assert!(boundary("multipart/mixed; boundary=abc").is_err());
        assert!(is_form_data(b"multipart/form-data+json ; boundary=x"));
        assert!(!is_form_data(b"multipart/form-datax"));
        assert!(!is_form_data(b"application/x-www-form-urlencoded"));
    }

    #[test]
    fn disposition_parameters_are_parsed_like_browsers_send_them() {
        let h =
            parse_disposition(r#" form-data; name="file"; filename="C:\dir\a \"b\".png""#).unwrap();
        assert!(h.is_file());
        assert_eq!(h.filename.as_deref(), Some(r#"C:\dir\a "b".png"#));
        let h = parse_disposition("form-data;NAME=key").unwrap();
        assert_eq!(h.name.as_deref(), Some("key"));
        assert!(
            !parse_disposition("attachment; name=\"file\"")
                .unwrap()
                .is_file()
        );
        assert!(parse_disposition("form-data; name=\"unterminated").is_err());
        assert!(parse_disposition("form-data; name").is_err());
        let h = parse_part_headers(
            b"content-type: text/plain\r\nContent-Disposition: form-data; name=\"File\"",
        )
        .unwrap();
        assert!(h.is_file());
        assert!(parse_part_headers(b"no colon here").is_err());
    }
}

//! Reader for the known-answer files in `testdata/` (test builds only).
//!
//! The format is CAVP-like: `Field = hex` lines, records separated by blank lines, `#` comments. It
//! must stay a test helper: production code never parses these files.

/// One record of a known-answer file.
pub(crate) struct Record(Vec<(String, String)>);

impl Record {
    fn get(&self, field: &str) -> &str {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("test vector has no field {field}"))
    }

    /// The record's `Name` field, for assertion messages.
    pub(crate) fn name(&self) -> String {
        self.get("Name").to_owned()
    }

    /// A field decoded from hex.
    pub(crate) fn hex(&self, field: &str) -> Vec<u8> {
        hex::decode(self.get(field)).unwrap_or_else(|e| panic!("field {field} is not hex: {e}"))
    }
}

/// Splits a known-answer file into records.
pub(crate) fn parse(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !fields.is_empty() {
                records.push(Record(std::mem::take(&mut fields)));
            }
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("test vector line without '=': {line}"));
        fields.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if !fields.is_empty() {
        records.push(Record(fields));
    }
    records
}

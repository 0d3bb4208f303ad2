//! UTC instants with millisecond precision, written `YYYY-MM-DDTHH:MM:SS.mmmZ`.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A UTC instant in whole milliseconds between 1970-01-01 and 9999-12-31.
///
/// There is no clock here: the caller passes the time in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// 9999-12-31T23:59:59.999Z in milliseconds since the Unix epoch.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub const EPOCH: Self = Self(0);

    /// The longest text [`Timestamp::parse`] reads (RFC 3339 allows any
    /// number of fraction digits; an event's time is refused past this).
    pub const MAX_TEXT_BYTES: usize = 64;

    /// From milliseconds since 1970-01-01T00:00:00Z.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        (0..=MAX_MILLIS).contains(&millis).then_some(Self(millis))
    }

    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (any offset) of at most [`Timestamp::MAX_TEXT_BYTES`],
    /// converts to UTC and drops digits below the millisecond.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > Self::MAX_TEXT_BYTES {
            return Err(format!("must be at most {} bytes", Self::MAX_TEXT_BYTES));
        }
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| "not an RFC 3339 date-time such as 2026-11-23T10:15:00.123Z".to_owned())?;
        let millis = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(millis)
            .ok()
            .and_then(Self::from_unix_millis)
            .ok_or_else(|| "must be between 1970-01-01 and 9999-12-31".to_owned())
    }

    /// Reads exactly the text form [`Timestamp::to_text`] writes
    /// (`YYYY-MM-DDTHH:MM:SS.mmmZ`, a real date from 1970 to 9999, no leap
    /// second), by position and without an RFC 3339 reader; `None` for
    /// any other text, including other spellings [`Timestamp::parse`]
    /// accepts. What a verifier reads from stored envelopes, whose times
    /// must have this one spelling.
    pub fn from_text(text: &[u8]) -> Option<Self> {
        let text: &[u8; 24] = text.try_into().ok()?;
        if text[4] != b'-'
            || text[7] != b'-'
            || text[10] != b'T'
            || text[13] != b':'
            || text[16] != b':'
            || text[19] != b'.'
            || text[23] != b'Z'
        {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<u16> {
            text[from..to].iter().try_fold(0u16, |n, &b| {
                b.is_ascii_digit().then(|| n * 10 + u16::from(b - b'0'))
            })
        };
        // The calendar's rules (month lengths, leap years) are the `time`
        // crate's, as in `parse`; only the RFC 3339 reader is skipped.
        let byte = |from: usize, to: usize| number(from, to).and_then(|n| u8::try_from(n).ok());
        let date = Date::from_calendar_date(
            i32::from(number(0, 4)?),
            Month::try_from(byte(5, 7)?).ok()?,
            byte(8, 10)?,
        )
        .ok()?;
        let time =
            Time::from_hms_milli(byte(11, 13)?, byte(14, 16)?, byte(17, 19)?, number(20, 23)?)
                .ok()?;
        let at = PrimitiveDateTime::new(date, time).assume_utc();
        let millis = at.unix_timestamp() * 1000 + i64::from(at.millisecond());
        Self::from_unix_millis(millis)
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(UtcOffset::UTC)
    }

    /// The calendar day (UTC) as `YYYY-MM-DD`.
    pub fn date_string(self) -> String {
        String::from_utf8_lossy(&self.to_text()[..10]).into_owned()
    }

    /// The text form, `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 1970 to 9999 take
    /// four digits), written without allocating.
    pub fn to_text(self) -> [u8; 24] {
        let dt = self.to_datetime();
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                // n % 10 < 10: the cast keeps every bit.
                #[allow(clippy::cast_possible_truncation)]
                let digit = (n % 10) as u8;
                out[i] = b'0' + digit;
                n /= 10;
            }
        };
        put(0, 4, dt.year().unsigned_abs());
        put(5, 2, u32::from(u8::from(dt.month())));
        put(8, 2, u32::from(dt.day()));
        put(11, 2, u32::from(dt.hour()));
        put(14, 2, u32::from(dt.minute()));
        put(17, 2, u32::from(dt.second()));
        put(20, 3, u32::from(dt.millisecond()));
        out
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_text();
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_exactly_three_fraction_digits_in_utc() {
        let t = Timestamp::parse("2026-11-23T11:15:00.123456+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:15:00.123Z");
        assert_eq!(
            Timestamp::parse("2026-11-23T10:15:00Z")
                .unwrap()
                .to_string(),
            "2026-11-23T10:15:00.000Z"
        );
        assert_eq!(Timestamp::EPOCH.to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(t.date_string(), "2026-11-23");
    }

    #[test]
    fn the_text_form_equals_the_time_crates_formatting() {
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let mut millis = 0i64;
        while millis <= MAX_MILLIS {
            let t = Timestamp::from_unix_millis(millis).unwrap();
            assert_eq!(t.to_string(), t.to_datetime().format(&format).unwrap());
            // Steps that visit every field's digits over the whole range.
            millis += 9_765_432_109;
        }
        let last = Timestamp::from_unix_millis(MAX_MILLIS).unwrap();
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn round_trips_through_its_text() {
        for millis in [0, 1, 999, 1_700_000_000_123, MAX_MILLIS] {
            let t = Timestamp::from_unix_millis(millis).unwrap();
            assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn rejects_text_that_is_not_rfc_3339_or_out_of_range() {
        assert!(Timestamp::parse("2026-11-23 10:15:00").is_err());
        // Fraction digits without end: past the longest text, refused.
        let long = format!("2026-11-23T10:15:00.{}Z", "1".repeat(43));
        assert_eq!(long.len(), Timestamp::MAX_TEXT_BYTES);
        assert!(Timestamp::parse(&long).is_ok());
        let longer = format!("2026-11-23T10:15:00.{}Z", "1".repeat(44));
        assert_eq!(
            Timestamp::parse(&longer),
            Err(format!(
                "must be at most {} bytes",
                Timestamp::MAX_TEXT_BYTES
            ))
        );
        assert!(
            Timestamp::parse("2026-11-23T10:15:00").is_err(),
            "offset is required"
        );
        assert!(Timestamp::parse("1969-12-31T23:59:59Z").is_err());
        assert!(Timestamp::from_unix_millis(-1).is_none());
        assert!(Timestamp::from_unix_millis(MAX_MILLIS + 1).is_none());
    }
}

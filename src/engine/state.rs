//! The autorate state file (INTERFACES.md §6), encoded and decoded. Pure: bytes in and out;
//! the shell does the atomic replace (temp file, fsync, rename, mode 0600) and supplies the
//! wall-clock timestamp string.
//!
//! Format, compact JSON with keys in this order (the steering daemon and operators read it):
//! `{"download":{"green_streak":0,"soft_red_streak":0,"red_streak":0,"current_rate":920000000},
//! "upload":{…},"ewma":{"baseline_rtt":24.83,"load_rtt":25.41},
//! "last_applied":{"dl_rate":920000000,"ul_rate":38000000},"timestamp":"2026-01-26T06:13:10.123456"}`.
//! Rates written by the original may be floats (`37500000.0`); they are read as such.

use serde::{Deserialize, Serialize};

/// One direction's persisted counters and rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct DirectionState {
    /// Consecutive GREEN cycles.
    #[serde(default)]
    pub green_streak: u32,
    /// Consecutive SOFT_RED cycles.
    #[serde(default)]
    pub soft_red_streak: u32,
    /// Consecutive RED cycles.
    #[serde(default)]
    pub red_streak: u32,
    /// Current rate, bit/s (integer when we write it; the original sometimes wrote floats).
    #[serde(serialize_with = "ser_rate", deserialize_with = "de_rate")]
    pub current_rate: u64,
}

/// The EWMAs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EwmaState {
    /// Baseline RTT (ms).
    pub baseline_rtt: f64,
    /// Load RTT (ms).
    pub load_rtt: f64,
}

/// Rates last confirmed by the router.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct LastApplied {
    /// Download, bit/s.
    #[serde(default, serialize_with = "ser_opt_rate", deserialize_with = "de_opt_rate")]
    pub dl_rate: Option<u64>,
    /// Upload, bit/s.
    #[serde(default, serialize_with = "ser_opt_rate", deserialize_with = "de_opt_rate")]
    pub ul_rate: Option<u64>,
}

/// The zones of the last cycle (newer upstream 1.11+, an added key the original's readers
/// ignore): what WAN-aware steering reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Congestion {
    /// Download zone: GREEN, YELLOW, SOFT_RED or RED.
    pub dl_state: String,
    /// Upload zone.
    pub ul_state: String,
}

/// The whole file. Sections missing from an old file keep their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// Download.
    pub download: Option<DirectionState>,
    /// Upload.
    pub upload: Option<DirectionState>,
    /// EWMAs.
    pub ewma: Option<EwmaState>,
    /// Last applied rates.
    #[serde(default)]
    pub last_applied: LastApplied,
    /// Zones (written by wanctl; absent in the original's files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub congestion: Option<Congestion>,
    /// Naive local ISO-8601 time of writing.
    #[serde(default)]
    pub timestamp: String,
}

fn ser_rate<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(*v)
}

fn de_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let f = f64::deserialize(d)?;
    if (0.0..1e13).contains(&f) {
        Ok(f as u64)
    } else {
        Err(serde::de::Error::custom(format!("rate out of range: {f}")))
    }
}

fn ser_opt_rate<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(r) => s.serialize_u64(*r),
        None => s.serialize_none(),
    }
}

fn de_opt_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let f = Option::<f64>::deserialize(d)?;
    match f {
        None => Ok(None),
        Some(f) if (0.0..1e13).contains(&f) => Ok(Some(f as u64)),
        Some(f) => Err(serde::de::Error::custom(format!("rate out of range: {f}"))),
    }
}

impl StateFile {
    /// Compact JSON, keys in the original's order.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a state file; the error says what is wrong (for the `.corrupt` warning).
    pub fn decode(bytes: &[u8]) -> Result<StateFile, String> {
        let s: StateFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if let Some(e) = &s.ewma
            && !(e.baseline_rtt.is_finite() && e.load_rtt.is_finite())
        {
            return Err("ewma values are not finite".into());
        }
        Ok(s)
    }

    /// True if everything but the timestamp equals `other` (dirty tracking).
    pub fn same_content(&self, other: &StateFile) -> bool {
        self.download == other.download
            && self.upload == other.upload
            && self.ewma == other.ewma
            && self.last_applied == other.last_applied
            && self.congestion == other.congestion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = r#"{"download":{"green_streak":0,"soft_red_streak":0,"red_streak":0,"current_rate":920000000},"upload":{"green_streak":5,"soft_red_streak":0,"red_streak":0,"current_rate":38000000},"ewma":{"baseline_rtt":24.83,"load_rtt":25.41},"last_applied":{"dl_rate":920000000,"ul_rate":38000000},"timestamp":"2026-01-26T06:13:10.123456"}"#;

    #[test]
    fn round_trips_the_original_format_byte_for_byte() {
        let s = StateFile::decode(ORIGINAL.as_bytes()).expect("parses");
        assert_eq!(String::from_utf8(s.encode()).expect("utf8"), ORIGINAL);
    }

    #[test]
    fn reads_float_rates_nulls_and_missing_sections() {
        let s = StateFile::decode(
            br#"{"upload":{"current_rate":37500000.0},"last_applied":{"dl_rate":null,"ul_rate":null}}"#,
        )
        .expect("parses");
        assert_eq!(s.upload.map(|u| u.current_rate), Some(37_500_000));
        assert_eq!(s.download, None);
        assert_eq!(s.last_applied, LastApplied::default());
    }

    #[test]
    fn issue_18_floats_survive_save_and_load_exactly() {
        // Values a real baseline EWMA produces; serde_json's fast float parser was off by
        // one ulp on some, so every save/load cycle moved the baseline.
        let mut x = 24.83_f64;
        let mut drifted = Vec::new();
        for i in 0..2000 {
            x = 0.999 * x + 0.001 * (20.0 + f64::from(i % 17) / 7.0);
            let s = StateFile {
                ewma: Some(EwmaState { baseline_rtt: x, load_rtt: x * 1.000_000_1 }),
                ..StateFile::decode(ORIGINAL.as_bytes()).expect("parses")
            };
            let back = StateFile::decode(&s.encode()).expect("parses").ewma.expect("ewma");
            if back.baseline_rtt.to_bits() != x.to_bits()
                || back.load_rtt.to_bits() != (x * 1.000_000_1).to_bits()
            {
                drifted.push(x);
            }
        }
        assert!(
            drifted.is_empty(),
            "{} of 2000 values changed on a round trip, e.g. {:?}",
            drifted.len(),
            drifted.first()
        );
    }

    #[test]
    fn garbage_is_an_error_with_a_reason() {
        assert!(StateFile::decode(b"{not json").is_err());
        assert!(StateFile::decode(br#"{"download":{"current_rate":-5}}"#).is_err());
    }
}

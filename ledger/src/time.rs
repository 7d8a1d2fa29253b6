//! Calendar arithmetic on block time, in Asia/Shanghai days.
//!
//! Daily and annual limits reset at midnight in Beijing (UTC+8, no daylight
//! saving), computed from the block's timestamp with integers only, so every
//! node gets the same day for the same block.

/// Seconds east of UTC for Asia/Shanghai.
const SHANGHAI_OFFSET_SECONDS: u64 = 8 * 3600;
const SECONDS_PER_DAY: u64 = 86_400;

/// The Asia/Shanghai day number (days since 1970-01-01 in UTC+8) of a
/// timestamp in milliseconds since the Unix epoch.
pub fn shanghai_day(timestamp_ms: u64) -> u64 {
    (timestamp_ms / 1000).saturating_add(SHANGHAI_OFFSET_SECONDS) / SECONDS_PER_DAY
}

/// The Gregorian calendar year of a day number (days since 1970-01-01).
/// Howard Hinnant's `civil_from_days`, restricted to days after 1970.
pub fn civil_year(day: u64) -> u32 {
    let z = day + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let year = year_of_era + era * 400 + u64::from(month_index >= 10);
    u32::try_from(year).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_midnight_starts_a_new_day() {
        // 2026-11-26 15:59:59 UTC is 23:59:59 in Beijing; a second later is the next day.
        let before = 1_795_708_799_000; // 2026-11-26T15:59:59Z
        assert_eq!(shanghai_day(before) + 1, shanghai_day(before + 1_000));
        assert_eq!(shanghai_day(0), 0);
    }

    #[test]
    fn years_turn_on_january_first_in_beijing() {
        // 2025-12-31T16:00:00Z is 2026-01-01 00:00 in Beijing.
        let new_year = 1_767_196_800_000;
        assert_eq!(civil_year(shanghai_day(new_year)), 2026);
        assert_eq!(civil_year(shanghai_day(new_year - 1)), 2025);
        assert_eq!(civil_year(0), 1970);
        // 2000-02-29 is day 11_016.
        assert_eq!(civil_year(11_016), 2000);
        assert_eq!(civil_year(11_016 + 366), 2001);
    }
}

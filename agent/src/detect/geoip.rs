//! Country lookups in a MaxMind-format database (GeoLite2-Country, DB-IP, or one built by the
//! tests), via the `maxminddb` crate. Used by the `country_mismatch` detector.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// Largest GeoIP database read (a city database is about 70 MiB; a country one about 10).
pub const MAX_GEOIP_BYTES: u64 = 256 << 20;

/// An opened country database.
#[derive(Debug)]
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Iso<'a>>,
}

#[derive(Deserialize)]
struct Iso<'a> {
    iso_code: Option<&'a str>,
}

impl GeoIp {
    /// Open a database file: a regular file of at most [`MAX_GEOIP_BYTES`], read whole.
    pub fn open(path: &Path) -> Result<GeoIp, maxminddb::MaxMindDBError> {
        let bytes = crossline_config::read::read_limited(path, MAX_GEOIP_BYTES)
            .map_err(|e| maxminddb::MaxMindDBError::IoError(e.reason()))?;
        Ok(GeoIp {
            reader: maxminddb::Reader::from_source(bytes)?,
        })
    }

    /// ISO 3166-1 alpha-2 country (upper case) of an address, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let rec: Record<'_> = self.reader.lookup(ip).ok()?;
        let code = rec.country?.iso_code?.as_bytes();
        match code {
            [a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
            _ => None,
        }
    }
}

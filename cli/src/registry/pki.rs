//! The registry's certificates: a CA of bfctl's own (ten years), and a
//! server certificate it signs (one year) for the registry's address and,
//! when set, its DNS name. The cluster's nodes and bfctl trust the CA;
//! rotating the server certificate (`registry create
//! --rotate-certificates`) signs a new one with the same CA, so nothing that
//! trusts the registry has to change.
//!
//! Keys are ECDSA P-256 (rcgen on ring), PEM in PKCS#8, which Zot and the
//! distribution registry (Go's crypto/tls) read.

use std::net::IpAddr;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid.
pub const CA_DAYS: i64 = 3650;
/// How long a server certificate is valid.
pub const SERVER_DAYS: i64 = 365;

/// A certificate and its private key, both PEM.
pub struct Pair {
    pub certificate_pem: String,
    pub key_pem: String,
}

/// A new CA.
pub fn new_ca(name: &str) -> anyhow::Result<Pair> {
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("bfctl registry CA ({name})"));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let certificate = params
        .self_signed(&key)
        .context("signing the CA certificate")?;
    Ok(Pair {
        certificate_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server certificate for the registry's addresses (the external one
/// first) and `dns_name` when not empty, signed by the CA.
pub fn server_certificate(
    ca: &Pair,
    external: IpAddr,
    internal: IpAddr,
    dns_name: &str,
) -> anyhow::Result<Pair> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).context("reading the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.certificate_pem, ca_key)
        .context("reading the CA certificate")?;
    let key = KeyPair::generate().context("generating the server key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names.push(SanType::IpAddress(external));
    if internal != external {
        params.subject_alt_names.push(SanType::IpAddress(internal));
    }
    if !dns_name.is_empty() {
        params.subject_alt_names.push(SanType::DnsName(
            dns_name
                .try_into()
                .with_context(|| format!("{dns_name:?} as a certificate name"))?,
        ));
    }
    params.distinguished_name.push(
        DnType::CommonName,
        if dns_name.is_empty() {
            external.to_string()
        } else {
            dns_name.to_string()
        },
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(SERVER_DAYS);
    let certificate = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;
    Ok(Pair {
        certificate_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a certificate says of itself.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateFacts {
    /// RFC 3339.
    pub not_after: String,
    pub days_left: i64,
    /// IP addresses and DNS names it is valid for.
    pub names: Vec<String>,
}

/// Reads a PEM certificate's expiry and names.
pub fn facts(pem: &str) -> anyhow::Result<CertificateFacts> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|error| anyhow::anyhow!("not a PEM certificate: {error}"))?;
    let certificate = parsed
        .parse_x509()
        .map_err(|error| anyhow::anyhow!("not an X.509 certificate: {error}"))?;
    let not_after = certificate.validity().not_after.timestamp();
    let days_left = (not_after - OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
    let mut names = Vec::new();
    if let Ok(Some(san)) = certificate.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => names.push(dns.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                        names.push(IpAddr::from(octets).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertificateFacts {
        not_after: jiff::Timestamp::from_second(not_after)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        days_left,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_certificate_names_the_address_and_the_dns_name_and_expires_in_a_year() {
        let ca = new_ca("test").unwrap();
        let server = server_certificate(
            &ca,
            "203.0.113.7".parse().unwrap(),
            "10.132.0.9".parse().unwrap(),
            "zot.example.com",
        )
        .unwrap();
        let facts = facts(&server.certificate_pem).unwrap();
        assert_eq!(
            facts.names,
            vec!["203.0.113.7", "10.132.0.9", "zot.example.com"]
        );
        assert!((363..=365).contains(&facts.days_left), "{facts:?}");
        assert!(server.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let ca_facts = super::facts(&ca.certificate_pem).unwrap();
        assert!(ca_facts.days_left > 3600, "{ca_facts:?}");
    }
}

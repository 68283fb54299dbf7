//! TLS options for the etcd connection (`etcd-tls` feature).

use etcd_client::{Certificate, Identity, TlsOptions};
use resilience_core::ConfigError;

use super::config::EtcdTls;
use super::error::EtcdError;

fn read(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|e| {
        EtcdError::Config(ConfigError::new(
            field,
            format!("cannot read `{}`: {e}", path.display()),
        ))
    })
}

/// The client TLS settings for `tls`.
pub(crate) fn options(tls: &EtcdTls) -> Result<TlsOptions, EtcdError> {
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(Certificate::from_pem(read("tls.ca_file", ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        options = options.identity(Identity::from_pem(
            read("tls.cert_file", cert)?,
            read("tls.key_file", key)?,
        ));
    }
    if let Some(domain) = &tls.domain {
        options = options.domain_name(domain.clone());
    }
    Ok(options)
}

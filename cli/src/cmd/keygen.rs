//! `tether keygen`: a new member identity on disk.

use crate::stderr::out;
use std::path::Path;

use crate::fail::Failure;
use tether_tokio::IdentityFile;

/// Writes a fresh identity to `out` (mode 0600) and prints its public key; the
/// secret is printed only when asked (X5).
pub fn run(
    out: &Path,
    mesh: &str,
    member: &str,
    name: Option<String>,
    print_secret: bool,
) -> Result<(), Failure> {
    let id = IdentityFile::generate(mesh, member, name).map_err(Failure::identity)?;
    id.save_new(out).map_err(Failure::identity)?;
    out!("wrote {} (mode 0600)", out.display());
    out!("mesh    {}", id.mesh_id);
    out!("member  {}", id.member_id);
    out!("pubkey  {}", id.pubkey());
    if print_secret {
        out!("secret  {}", id.secret().to_hex());
    }
    Ok(())
}

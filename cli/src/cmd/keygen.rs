//! `tether keygen`: a new member identity on disk.

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
    println!("wrote {} (mode 0600)", out.display());
    println!("mesh    {}", id.mesh_id);
    println!("member  {}", id.member_id);
    println!("pubkey  {}", id.pubkey());
    if print_secret {
        println!("secret  {}", id.secret().to_hex());
    }
    Ok(())
}

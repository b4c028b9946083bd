"""ColorGAN reproduction library."""

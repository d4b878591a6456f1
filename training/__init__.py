"""Training recipe of rtvoice's default voice (torch: the build extra). See training/README.md."""

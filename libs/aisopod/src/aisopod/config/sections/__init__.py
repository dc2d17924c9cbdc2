"""One module per section of the gateway configuration; each owner extends its own."""

"""Operator tooling of aisopod gateway: the local stack launcher (`launcher/`), the deploy
renderers and the `aisopod` CLI (`cli/`). Services never import it; it imports the shared
library `aisopod` for settings, subjects and the configuration model."""

"""Weekly per-user LoRA fine-tunes: the job (claim, train, gate, deploy), its ops API and the
adapters' deployment to the model server (``docs/finetune.md``)."""

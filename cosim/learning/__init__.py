"""Learning: the multi-modal multi-task CLIP model, PEFT modules and the federated trainer."""

"""Load Stable Diffusion weights offline: single-file checkpoints, diffusers folders, VAEs and ControlNets.

Nothing is ever fetched. One module per job: `weight_files` reads files and names their defects
(`CheckpointError`); `detection` tells the family and prediction type from the keys; `model_configs`
chooses the diffusers configs; `strict` builds models on the meta device and loads them strictly;
`streaming` feeds single .safetensors files in one tensor at a time; `single_file`,
`diffusers_folder`, `vae_file` and `controlnet_file` load each kind of model.
"""

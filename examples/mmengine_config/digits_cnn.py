# An MMEngine config for the digits model: _base_ files merged as MMEngine merges them.
#   python examples/mmengine_config/train.py examples/mmengine_config/digits_cnn.py
_base_ = ["./_base_/default_runtime.py", "./_base_/schedule.py"]

work_dir = "./work_dirs/{{ fileBasenameNoExtension }}"

default_hooks = dict(
    logger=dict(interval=10),  # merges into the base's LoggerHook entry
    checkpoint=dict(save_best="auto", max_keep_ckpts=2),
    visualization=dict(_delete_=True, type="VisualizationHook", enable=True),  # drawing: skipped with a warning
)
custom_hooks = [dict(type="EMAHook", momentum=0.02, priority="ABOVE_NORMAL")]

visualizer = dict(vis_backends=[dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")])
log_processor = dict(window_size=10, by_epoch=True)

train_cfg = dict(max_epochs=3)
optim_wrapper = dict(optimizer=dict(lr=0.05), paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    # warm up over the first 20 iterations
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=20),
    # cosine over the epochs, stepped every iteration (end defaults to max_epochs)
    dict(type="CosineAnnealingLR", eta_min=1e-4, by_epoch=True, begin=0, convert_to_iter_based=True),
]
randomness = dict(seed=0)

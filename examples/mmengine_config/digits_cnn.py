# An MMEngine config for the digits model: _base_ files merged as MMEngine merges them.
#   python examples/mmengine_config/train.py examples/mmengine_config/digits_cnn.py
_base_ = ["./_base_/default_runtime.py", "./_base_/schedule.py"]

work_dir = "./work_dirs/{{ fileBasenameNoExtension }}"

default_hooks = dict(
    logger=dict(interval=10),  # merges into the base's LoggerHook entry
    checkpoint=dict(save_best="auto", max_keep_ckpts=2),
    visualization=dict(_delete_=True, type="VisualizationHook"),  # a downstream hook: reported, see train.py
)
custom_hooks = [dict(type="EMAHook", momentum=0.02, priority="ABOVE_NORMAL")]

visualizer = dict(vis_backends=[dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")])
log_processor = dict(window_size=10, by_epoch=True)

train_cfg = dict(max_epochs=3)
optim_wrapper = dict(optimizer=dict(lr=0.05))

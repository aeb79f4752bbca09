"""perception_node: the rclpy lifecycle shell around the HydraNet pipeline (Humble and Jazzy).

Thin on purpose: every decision (parameter rules, QoS, which outputs to compute, depth
encoding, LabelInfo content, diagnostics) is a plain function in hydranet_ros/outputs/ (params,
qos, plan, render, diagnostics), and the per-message path (convert and submit:
runtime/intake.py; infer and build every output: outputs/render.py) is tested and fuzzed
without ROS. This module only declares, subscribes and copies the rendered fields into messages.

Life cycle:
- configure: validate parameters, load weights and build the engine (Pipeline.create), make the
  lifecycle publishers and start the frame worker. Failure leaves the node unconfigured, alive,
  and configurable again, with the cause in the log and in /diagnostics.
- activate: subscribe to the camera; publishers go live. deactivate: unsubscribe.
- cleanup / shutdown / error: stop the worker, destroy publishers, free the engine.

Threads: the image callback (executor thread) only converts the message to a numpy frame and
hands it to the FrameWorker, which never blocks; inference and publishing happen in the
worker's one thread, so a slow network drops old frames instead of delaying the executor.

Several cameras (parameter ``cameras``): one network, one worker (runtime/batch_worker: the
newest frame of each camera, run as one batch), and per camera the single-camera node's
subscriptions and publishers under the camera's name (outputs/cameras.py). Each camera's
messages are built by the same outputs/render code as the single camera's; /diagnostics has one
status per camera (rates, drops and why, latency) beside the node's own (batching).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest

from hydranet_ros.errors import HydraNetError, first_line
from hydranet_ros.msg import HydraNetResult
from hydranet_ros.outputs import cameras as output_cameras
from hydranet_ros.outputs import diagnostics, fields as output_fields, params, plan as output_plan, qos
from hydranet_ros.outputs import render as rendering
from hydranet_ros.ros.qos import to_rclpy
from hydranet_ros.runtime import intake
from hydranet_ros.runtime.batch_worker import BatchStats, BatchWorker
from hydranet_ros.runtime.frame_worker import FrameWorker, WorkerStats
from hydranet_ros.runtime.focal import depth_focal_status

try:  # vision_msgs is optional: without it only semantic/label_info is missing
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

NODE_NAME = "perception_node"
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_MESSAGE_CLASSES = {
    rendering.IMAGE: Image, rendering.CAMERA_INFO: CameraInfo, rendering.REGION_OF_INTEREST: RegionOfInterest,
    rendering.RESULT: HydraNetResult, rendering.POINT_CLOUD2: PointCloud2, rendering.POINT_FIELD: PointField,
    **({rendering.LABEL_INFO: LabelInfo, rendering.VISION_CLASS: VisionClass} if LabelInfo is not None else {}),
}


def _declared_default(spec: params.ParamSpec) -> Any:
    """What declare_parameter takes for ``spec``'s default. An empty list cannot say its element
    type (rclpy would take it for a byte array and refuse a list of names from YAML), so the
    string-array parameter is declared by its type and left unset until given."""
    if spec.type is list:
        return list(spec.default) if spec.default else Parameter.Type.STRING_ARRAY
    return spec.default


def _descriptor(spec: params.ParamSpec) -> ParameterDescriptor:
    fields = params.describe(spec)
    descriptor = ParameterDescriptor(
        name=spec.name,
        description=fields["description"],
        additional_constraints=fields["additional_constraints"],
        read_only=fields["read_only"],
    )
    if fields["integer_range"]:
        low, high = fields["integer_range"]
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
    if fields["floating_point_range"]:
        low, high = fields["floating_point_range"]
        descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    return descriptor


def _to_ros(message: rendering.Message, built: dict[int, Any], into: Any = None) -> Any:
    """The rclpy message for a rendered Message: fields copied as they are (already in the types
    rclpy's setters store without a per-element check). A Message in two places (the labels image,
    published and nested in the fused message) becomes one object: ``built`` holds this frame's.
    Nested types the node has no class for (std_msgs/Header, builtin_interfaces/Time) are filled
    into the default instance their parent already holds."""
    if into is None:
        if id(message) in built:
            return built[id(message)]
        into = built[id(message)] = _MESSAGE_CLASSES[message.type]()
    for name, value in message.fields.items():
        if isinstance(value, rendering.Message):
            if value.type not in _MESSAGE_CLASSES:
                _to_ros(value, built, into=getattr(into, name))
                continue
            value = _to_ros(value, built)
        elif isinstance(value, list):
            value = [_to_ros(item, built) if isinstance(item, rendering.Message) else item for item in value]
        setattr(into, name, value)
    return into


class _Camera:
    """One camera's publishers and what the node remembers of it between frames. The single-camera
    node has one, named '' (topics at the node's namespace, as always)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inputs = output_cameras.input_topics(name)
        self.topics = output_cameras.output_topics(name)
        self.output_pubs: dict[str, Any] = {}
        self.label_info_pub: Any = None
        self.label_info_sent: tuple[str, float] | None = None  # (frame_id, threshold) LabelInfo was last sent for
        self.points_skipped_reported = 0  # POINTS_WITHOUT_CAMERA_INFO at the last /diagnostics report
        self.camera_info: Any = None  # the newest CameraInfo (one reference swap per message)
        self.depth_focal: str | None = None  # where depth's focal length came from, last frame
        self.depth_focal_text = ""
        self.counters: Counter[str] = Counter()
        self.image_warnings = diagnostics.RejectionThrottle(interval_s=5.0)  # executor thread
        self.info_warnings = diagnostics.RejectionThrottle(interval_s=5.0)  # worker thread
        self.last_timings: dict[str, float] = {}
        self.last_stats: WorkerStats | None = None
        self.input: Any = None  # FrameWorker, or the BatchWorker's input for this camera

    @property
    def label(self) -> str:
        return f"camera {self.name}" if self.name else "the camera"


class PerceptionNode(LifecycleNode):
    """Semantic labels, metric depth and their metadata for every camera frame."""

    def __init__(self, *, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._declare_problems: dict[str, str] = {}
        for spec in params.PARAMETERS:
            self._declare(spec)
        # Registered after declaring: values from YAML/launch are checked in on_configure, where
        # a refusal keeps the node alive instead of raising out of the constructor.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._live = params.LiveSettings.from_values(self._values())

        self._state = "unconfigured"
        self._problem = ""
        self._pipeline: Any = None
        self._info: dict[str, Any] = {}
        self._worker: FrameWorker | BatchWorker | None = None
        self._cameras: list[_Camera] = [_Camera("")]
        self._batch_timeout_ms = 0.0
        self._input_subs: list[Any] = []
        self._counters_lock = threading.Lock()
        self._last_batch_stats: BatchStats | None = None
        self._last_report_at = time.monotonic()

        # /diagnostics is a plain publisher: it reports in every state, including a failed configure.
        self._diagnostics_pub = self.create_publisher(
            DiagnosticArray, "/diagnostics", to_rclpy(qos.DIAGNOSTICS_QOS))
        # On steady time, not ROS time: under `ros2 bag play --clock` with use_sim_time a ROS-time
        # timer waits for the first /clock and stops while the bag is paused, and the node's health
        # would go unreported exactly then. Its messages are still stamped with ROS time.
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_timer = self._every(float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics)

    def _every(self, period_s: float, callback: Any) -> Any:
        return self.create_timer(period_s, callback, clock=self._steady_clock)

    # -- parameters ---------------------------------------------------------------------------

    def _declare(self, spec: params.ParamSpec) -> None:
        try:
            self.declare_parameter(spec.name, _declared_default(spec), _descriptor(spec))
        except ParameterException as exc:
            # A value from YAML or launch of the wrong type or out of range: keep the default,
            # remember why, and refuse to configure until it is fixed.
            self._declare_problems[spec.name] = f"{spec.name}: {exc}"
            self.declare_parameter(spec.name, _declared_default(spec), _descriptor(spec), ignore_override=True)
            self.get_logger().error(f"parameter {spec.name} refused: {exc}")

    def _values(self) -> dict[str, Any]:
        values = {}
        for name, spec in params.SPECS.items():
            if spec.type is list:  # declared by type: unset means the default, no cameras
                value = self.get_parameter_or(name, Parameter(name, Parameter.Type.STRING_ARRAY, list(spec.default))).value
                values[name] = list(value) if value is not None else list(spec.default)
            else:
                values[name] = self.get_parameter(name).value
        return values

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in params.SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        current = self._values()
        reason = params.change_refusal(changes, current, configured=self._pipeline is not None)
        if not reason and self._pipeline is not None:  # class names need the weights' classes
            reason = params.class_refusal(changes, self._pipeline.preset.class_names)
        if reason:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        self._live = params.LiveSettings.from_values({**current, **changes})
        for name in changes:
            self._declare_problems.pop(name, None)
        return SetParametersResult(successful=True)

    # -- life cycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self._values()
        problems = {**self._declare_problems, **params.validate_all(values)}
        if problems:
            return self._configure_failed("parameters refused: " + "; ".join(problems.values()))
        try:
            # Imported here: torch and the engines load only when a node is configured.
            from hydranet_ros.runtime.memory_fallback import MemoryFallbackPipeline
            from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

            config = PipelineConfig(**params.pipeline_kwargs(values))
            # Out of GPU memory on the first frame: a smaller input size, or a clear error if strict.
            pipeline = MemoryFallbackPipeline(Pipeline.create(config), strict=config.strict)
        except HydraNetError as exc:  # WeightsError, EngineError, ...: the file or setting and the cause
            return self._configure_failed(f"cannot build the pipeline: {first_line(exc)}")
        except Exception as exc:  # noqa: BLE001 - a bug, named by its type; the node stays up all the same
            return self._configure_failed(f"cannot build the pipeline: {type(exc).__name__}: {first_line(exc)}")
        refusal = params.class_refusal(values, pipeline.preset.class_names)
        if refusal:
            return self._configure_failed(f"parameters refused: {refusal}")

        self._pipeline, self._info, self._problem = pipeline, dict(pipeline.info), ""
        self._live = params.LiveSettings.from_values(values)
        self._cameras = [_Camera(name) for name in output_cameras.camera_names(values["cameras"])]
        output_qos = to_rclpy(qos.qos_settings(values["output_qos"], values["output_depth"]))
        if LabelInfo is None:
            self.get_logger().warning(
                "vision_msgs is not installed: semantic/label_info is not published", once=True)
        for camera in self._cameras:
            camera.output_pubs = {
                name: self.create_lifecycle_publisher(_MESSAGE_CLASSES[spec.message], camera.topics[name], output_qos)
                for name, spec in output_plan.OUTPUTS.items()
            }
            if LabelInfo is not None:
                camera.label_info_pub = self.create_lifecycle_publisher(
                    LabelInfo, camera.topics["label_info"], to_rclpy(qos.LABEL_INFO_QOS))
        if values["cameras"]:
            self._batch_timeout_ms = float(values["batch_timeout_ms"])
            names = [camera.name for camera in self._cameras]
            self._worker = BatchWorker(cameras=names, process_batch=self._infer_batch, on_result=self._publish_batched,
                                       on_error=self._on_batch_error, batch_timeout_s=self._batch_timeout_ms / 1000.0).start()
            for camera in self._cameras:
                camera.input = self._worker.camera(camera.name)
        else:
            [camera] = self._cameras
            self._worker = FrameWorker(process=lambda frame: self._infer(camera, frame),
                                       on_result=lambda frame, rendered: self._publish(camera, frame, rendered),
                                       on_error=self._on_worker_error).start()
            camera.input = self._worker
        self._last_batch_stats, self._last_report_at = None, time.monotonic()
        self.destroy_timer(self._diagnostics_timer)
        self._diagnostics_timer = self._every(float(values["diagnostics_period"]), self._publish_diagnostics)
        self._state = "inactive"
        cameras = f" for {len(self._cameras)} cameras ({', '.join(values['cameras'])})" if values["cameras"] else ""
        self.get_logger().info(
            f"configured{cameras}: " + ", ".join(f"{key}={value}" for key, value in sorted(self._info.items())))
        return SUCCESS

    def _configure_failed(self, problem: str) -> TransitionCallbackReturn:
        self._problem = problem
        self.get_logger().error(problem)
        return FAILURE  # back to unconfigured; the node stays up and can be configured again

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != SUCCESS:
            return result
        values = self._values()
        input_qos = to_rclpy(qos.qos_settings(values["input_qos"], values["input_depth"]))
        for camera in self._cameras:
            if values["compressed"]:
                self._input_subs.append(self.create_subscription(
                    CompressedImage, camera.inputs["image/compressed"],
                    lambda msg, camera=camera: self._take(camera, msg, compressed=True), input_qos))
            else:
                self._input_subs.append(self.create_subscription(
                    Image, camera.inputs["image"], lambda msg, camera=camera: self._take(camera, msg, compressed=False),
                    input_qos))
            if values["use_camera_info"]:
                self._input_subs.append(self.create_subscription(
                    CameraInfo, camera.inputs["camera_info"],
                    lambda msg, camera=camera: self._on_camera_info(camera, msg), input_qos))
        self._state = "active"
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}; releasing the engine")
        self.release()
        self._state = "unconfigured"
        return SUCCESS  # error processing done: back to unconfigured

    def _unsubscribe(self) -> None:
        for subscription in self._input_subs:
            self.destroy_subscription(subscription)
        self._input_subs = []
        for camera in self._cameras:
            camera.camera_info = None

    def release(self) -> None:
        """Stop the worker and free publishers and engine (also called from main on exit)."""
        self._unsubscribe()
        if self._worker is not None:
            if not self._worker.stop(timeout=10.0):
                self.get_logger().warning("the frame in progress did not finish within 10 s; left behind")
            self._worker = None
        for camera in self._cameras:
            for publisher in camera.output_pubs.values():
                self.destroy_lifecycle_publisher(publisher)
            if camera.label_info_pub is not None:
                self.destroy_lifecycle_publisher(camera.label_info_pub)
            camera.output_pubs, camera.label_info_pub, camera.input = {}, None, None
        self._pipeline, self._info = None, {}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the engine's GPU memory back to other processes

    # -- input (executor thread; never waits for inference) -------------------------------------

    def _on_camera_info(self, camera: _Camera, msg: CameraInfo) -> None:
        camera.camera_info = msg  # one reference swap; the worker reads whichever is newest

    def _plan(self, camera: _Camera, *, have_camera_info: bool, label_info_due: bool = False) -> output_plan.FramePlan:
        subscribers = {name: publisher.get_subscription_count() for name, publisher in camera.output_pubs.items()}
        return output_plan.plan_frame(self._live.publish, subscribers, have_camera_info=have_camera_info,
                                      label_info_due=label_info_due, min_confidence=self._live.min_confidence)

    def _take(self, camera: _Camera, msg: Any, *, compressed: bool) -> None:
        worker = camera.input
        if worker is None:
            return
        camera_info = camera.camera_info
        plan = self._plan(camera, have_camera_info=camera_info is not None)
        if plan.without_camera_info & set(output_plan.CLOUD_OUTPUTS):
            self._count(camera, diagnostics.POINTS_WITHOUT_CAMERA_INFO)
        if not plan.publishes:
            self._count(camera, "frames_skipped_no_subscribers")
            return
        refusal = intake.offer(worker, msg, compressed=compressed, max_pixels=self._live.max_input_pixels,
                               camera_info=camera_info)
        if refusal is not None:
            warn, suppressed = camera.image_warnings.check(refusal.reason, time.monotonic())
            if warn:
                more = f" ({suppressed} more like it since the last warning)" if suppressed else ""
                where = f" of {camera.label}" if camera.name else ""
                self.get_logger().warning(f"dropped an input image{where} [{refusal.reason}]: {refusal.detail}{more}")

    def _count(self, camera: _Camera, key: str) -> None:
        with self._counters_lock:
            camera.counters[key] += 1

    # -- inference and output (worker thread) ----------------------------------------------------

    def _frame_plan(self, camera: _Camera, frame: intake.Frame) -> output_plan.FramePlan:
        # LabelInfo is latched: sent with the first frame and again when the frame id or the
        # confidence threshold changes.
        label_info_due = camera.label_info_pub is not None and output_fields.label_info_due(
            camera.label_info_sent, frame.header.frame_id, self._live.min_confidence)
        return self._plan(camera, have_camera_info=frame.camera_info is not None, label_info_due=label_info_due)

    def _infer(self, camera: _Camera, frame: intake.Frame) -> rendering.Rendered | None:
        live = self._live
        return rendering.render(self._pipeline, frame, self._frame_plan(camera, frame),
                                depth_encoding=live.depth_encoding, overlay_alpha=live.overlay_alpha,
                                confidence_encoding=live.confidence_encoding, cloud=live.cloud)

    def _infer_batch(self, batch: list[tuple[str, intake.Frame]]) -> list[rendering.Rendered | None]:
        """Every waiting camera's frame through one network pass; each camera's messages built
        as the single-camera node builds them (outputs/render.render_batch)."""
        live = self._live
        cameras = {camera.name: camera for camera in self._cameras}
        items = [(frame, self._frame_plan(cameras[name], frame)) for name, frame in batch]
        return rendering.render_batch(self._pipeline, items, depth_encoding=live.depth_encoding,
                                      overlay_alpha=live.overlay_alpha, confidence_encoding=live.confidence_encoding,
                                      cloud=live.cloud)

    def _publish_batched(self, name: str, frame: intake.Frame, rendered: rendering.Rendered | None) -> None:
        self._publish(next(camera for camera in self._cameras if camera.name == name), frame, rendered)

    def _publish(self, camera: _Camera, frame: intake.Frame, rendered: rendering.Rendered | None) -> None:
        if rendered is None:  # the last subscriber left while the frame waited
            return
        if rendered.depth_focal is not None and rendered.depth_focal != camera.depth_focal:
            self._note_depth_focal(camera, rendered.depth_focal)
        if rendered.timings_ms:
            camera.last_timings = rendered.timings_ms
        self._count_camera_info_problem(camera, rendered.camera_info_problem)
        built: dict[int, Any] = {}
        for name, message in rendered.messages.items():
            publisher = camera.label_info_pub if name == "label_info" else camera.output_pubs[name]
            publisher.publish(_to_ros(message, built))
        if "label_info" in rendered.messages:
            camera.label_info_sent = (frame.header.frame_id, rendered.plan.min_confidence)

    def _note_depth_focal(self, camera: _Camera, source: str) -> None:
        """Say once (log and /diagnostics) where metric depth's focal length comes from, and again
        only when that changes (a CameraInfo arrives, or stops being usable)."""
        camera.depth_focal = source
        text = depth_focal_status(source, self._pipeline.training_camera)
        camera.depth_focal_text = text
        if not camera.name:
            self._info["depth_focal"] = text
        where = f" ({camera.label})" if camera.name else ""
        if source == "camera":
            self.get_logger().info(f"depth{where}: {text}")
        else:
            self.get_logger().warning(f"depth{where}: {text} (publish the camera's camera_info)")

    def _count_camera_info_problem(self, camera: _Camera, problem: Exception | None) -> None:
        if problem is None:
            return
        self._count(camera, f"camera_info_rejected.{problem.reason}")
        warn, suppressed = camera.info_warnings.check(problem.reason, time.monotonic())
        if warn:
            more = f" ({suppressed} more since the last warning)" if suppressed else ""
            where = f" for {camera.label}" if camera.name else ""
            self.get_logger().warning(f"camera_info{where} not republished [{problem.reason}]: {problem}{more}")

    def _on_worker_error(self, frame: intake.Frame, exc: BaseException) -> None:
        self.get_logger().error(f"processing a frame failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=5.0)

    def _on_batch_error(self, name: str, frame: intake.Frame, exc: BaseException) -> None:
        self.get_logger().error(f"processing a frame of camera {name} failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=5.0)

    # -- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        period = now - self._last_report_at
        worker = self._worker
        name = f"{self.get_fully_qualified_name()}: HydraNet perception"
        statuses = []
        if isinstance(worker, BatchWorker):
            batches = worker.batch_stats()
            statuses.append(self._status(name, diagnostics.batch_report(
                state=self._state, current=batches, previous=self._last_batch_stats, period_s=period, info=self._info,
                batch_timeout_ms=self._batch_timeout_ms, problem=self._problem)))
            self._last_batch_stats = batches
            for camera in self._cameras:
                info = {**self._info, **({"depth_focal": camera.depth_focal_text} if camera.depth_focal_text else {})}
                statuses.append(self._status(f"{name}, camera {camera.name}", self._camera_report(
                    camera, worker.stats(camera.name), period, info), camera=camera.name))
        else:
            [camera] = self._cameras[:1] if self._cameras else [_Camera("")]
            current = worker.stats() if worker is not None else None
            statuses.append(self._status(name, self._camera_report(camera, current, period, self._info)))
        self._last_report_at = now
        array_msg = DiagnosticArray()
        array_msg.header.stamp = self.get_clock().now().to_msg()  # ROS time: sim time under replay
        array_msg.status = statuses
        self._diagnostics_pub.publish(array_msg)

    def _camera_report(self, camera: _Camera, current: WorkerStats | None, period: float,
                       info: dict[str, Any]) -> diagnostics.DiagnosticsReport:
        with self._counters_lock:
            counters = dict(camera.counters)
        # Point clouds wanted but not made for want of this camera's CameraInfo: said in its status.
        skipped = counters.get(diagnostics.POINTS_WITHOUT_CAMERA_INFO, 0)
        note = diagnostics.points_note(skipped, camera.points_skipped_reported,
                                       use_camera_info=bool(self.get_parameter("use_camera_info").value))
        camera.points_skipped_reported = skipped
        report = diagnostics.diagnostics_report(
            state=self._state, current=current, previous=camera.last_stats, period_s=period, info=info,
            counters=counters, timings_ms=camera.last_timings, problem=self._problem, notes=(note,) if note else ())
        if current is not None:
            camera.last_stats = current
        return report

    def _status(self, name: str, report: diagnostics.DiagnosticsReport, *, camera: str | None = None) -> DiagnosticStatus:
        status = DiagnosticStatus()
        status.level = bytes([report.level])  # a ROS `byte` is a length-1 bytes object in Python
        status.name = name
        status.message = report.message
        status.hardware_id = str(self._info.get("device", ""))
        values = ([("camera", camera)] if camera is not None else []) + list(report.values)
        status.values = [KeyValue(key=key, value=value) for key, value in values]
        return status

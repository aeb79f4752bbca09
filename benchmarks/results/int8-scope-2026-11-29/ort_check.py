import sys, time, statistics, tempfile, os
from pathlib import Path
sys.path.insert(0, "benchmarks"); sys.path.insert(0, ".")
import cv2, numpy as np, torch
torch.set_num_threads(2)
from bench_cpu import CALIBRATION_SEED, HELD_OUT_SEED, real_frames, synthetic_frames
from hydranet_ros.model.checkpoints import load_weights
from hydranet_ros.runtime.calibration import prepare
from hydranet_ros.runtime.engines import int8, onnxruntime_engine as ore
from hydranet_ros.runtime.engines.onnx_export import cached_onnx
from hydranet_ros.runtime.engine_cache import EngineCache
import onnxruntime as ort
size=(640,480)
w=load_weights("default"); m=w.build_model().eval(); p=w.preset
work=Path(tempfile.mkdtemp()); calib=work/"c"; calib.mkdir()
for i,f in enumerate(synthetic_frames(48, CALIBRATION_SEED)): cv2.imwrite(str(calib/f"{i:03d}.png"), f[..., ::-1])
onnx_path=cached_onnx(m, weights_sha256=w.sha256, input_size=None, cache=EngineCache(directory=str(work/"cache")))
data=int8.int8_frames(str(calib), frames=48, size=size, mean=p.mean, std=p.std)
nodes=ore._node_names(onnx_path)
opts=ort.SessionOptions(); opts.intra_op_num_threads=2
sess=lambda path: ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
fp32=sess(onnx_path)
judged={"real":[prepare(f,size=size,mean=p.mean,std=p.std,fill_request=False).numpy() for f in real_frames()],
        "synthetic":[prepare(f,size=size,mean=p.mean,std=p.std,fill_request=False).numpy() for f in synthetic_frames(16,HELD_OUT_SEED)]}
old=["/model/segm/out/Conv","/model/depth/out/Conv","/model/encoder/layer1/layer1.0/Conv"]
cands={"stem+out (before)": [n for n in old if n in nodes], "encoder123+out (now)": ore.fp32_nodes(nodes)}
models={"onnxruntime fp32": fp32}
for name, excl in cands.items():
    out=work/f"{len(models)}.onnx"
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    class R(CalibrationDataReader):
        def __init__(s): s.it=iter(data.calibration)
        def get_next(s):
            f=next(s.it,None); return None if f is None else {"image":f}
    quantize_static(str(onnx_path), str(out), R(), quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, reduce_range=True, nodes_to_exclude=excl)
    models[name]=sess(out)
    line=name+f" ({len(excl)} nodes fp32)"
    for kind, fr in judged.items():
        g=int8.measure_gate(ore._forward(models[name]), ore._forward(fp32), fr)
        line+=f"  {kind} {100*g.labels_agree:.2f} % / {100*g.depth_median_rel:.2f} %"
    line+= "  per real frame " + str([round(int8.measure_gate(ore._forward(models[name]), ore._forward(fp32), [f]).labels_agree*100,2) for f in judged["real"]])
    print(line, flush=True)
frame=prepare(np.ascontiguousarray(cv2.resize(real_frames()[0], size, interpolation=cv2.INTER_AREA)), size=size, mean=p.mean, std=p.std, fill_request=False).numpy()
t={k:[] for k in models}
for s in models.values(): s.run(None, {"image": frame})
print("load", os.getloadavg()[0])
for r in range(6):
    ks=list(models); ks=ks[r%len(ks):]+ks[:r%len(ks)]
    for k in ks:
        a=time.perf_counter(); models[k].run(None, {"image": frame}); t[k].append((time.perf_counter()-a)*1e3)
ref=statistics.median(t["onnxruntime fp32"])
for k,v in t.items(): print(f"{k:24s} forward {statistics.median(v):7.1f} ms  fp32/this {ref/statistics.median(v):.2f}x")
print("load", os.getloadavg()[0], time.strftime("%H:%M UTC", time.gmtime()))

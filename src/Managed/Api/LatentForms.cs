using NativeVae.Core;
using NativeVae.Models;

namespace NativeVae.Api;

/// <summary>
/// The pipelines' latent forms (<see cref="LatentForm"/>) to and from the raw latent <c>[N, C, h, w]</c>. Tokens and
/// patched channels share one index: token <c>i*(w/2)+j</c>, feature <c>k = 4c + 2dy + dx</c>
/// (<see cref="FluxLatentPacking"/>); patchified <c>[N, 4C, h/2, w/2]</c> holds feature k of token (i, j) at
/// <c>[n, k, i, j]</c>. A model without a <see cref="LatentNormalization"/> takes raw latents and, as FLUX.1's
/// pipeline sends them, packed raw latents.
/// </summary>
internal static class LatentForms
{
    private const int Patch = 2;
    private const int PatchArea = Patch * Patch;
    private const int PackedRank = 3;
    private const int ImageRank = 4;
    private const int VideoRank = 5;

    /// <summary>The forms a model gives on encode and takes on decode.</summary>
    public static IReadOnlyList<LatentForm> Supported(LatentNormalization? normalization) =>
        Supported(normalization is not null, normalization?.HasPatchifiedForm ?? false);

    /// <inheritdoc cref="Supported(LatentNormalization?)"/>
    public static IReadOnlyList<LatentForm> Supported(bool normalised, bool patchified) =>
        !normalised ? [LatentForm.Raw]
        : patchified ? [LatentForm.Raw, LatentForm.Patchified, LatentForm.Packed]
        : [LatentForm.Raw, LatentForm.Packed];

    /// <summary>
    /// A published family's latent forms and frame axis, for a client that holds no model (<see cref="RemoteVae"/>):
    /// it checks the shapes; the server normalises with the model's own statistics.
    /// </summary>
    public static (IReadOnlyList<LatentForm> Forms, bool FrameAxis) ShapesOf(ModelFamily family) => family switch
    {
        ModelFamily.Flux2 => (Supported(normalised: true, patchified: true), false),
        ModelFamily.QwenImage => (Supported(normalised: true, patchified: false), true),
        ModelFamily.Wan or ModelFamily.Wan22 => (Supported(normalised: false, patchified: false), true),
        _ => (Supported(normalised: false, patchified: false), false),
    };

    /// <summary>Checks an encode's form and factors before any work.</summary>
    /// <exception cref="ArgumentException">a form the model has not, or factors beside a normalised form.</exception>
    public static void CheckEncode(EncodeOptions options, LatentNormalization? normalization, string family)
    {
        if (options.Form == LatentForm.Raw) return;
        if (!Supported(normalization).Contains(options.Form))
            throw new ArgumentException(
                $"EncodeOptions.Form {options.Form}: {family}'s pipeline has no {options.Form.Name()} latent form (it has: {string.Join(", ", Supported(normalization).Select(f => f.Name()))})");
        RequireNoFactors(options.ScalingFactor, options.ShiftFactor, "EncodeOptions", options.Form);
    }

    /// <summary>The encoder's raw latent <c>[N, C, h, w]</c> in the requested form (raw with a frame axis of 1 for a video VAE).</summary>
    public static HostTensor<float> FromRaw(HostTensor<float> raw, LatentForm form, LatentNormalization? normalization, bool frameAxis)
    {
        if (form == LatentForm.Raw)
            return frameAxis ? new HostTensor<float>(new TensorShape(raw.Shape.N, raw.Shape.C, 1, raw.Shape.H, raw.Shape.W), raw.Data) : raw;
        var n = normalization ?? throw new InvalidOperationException("a pipeline form without its normalisation");
        var s = raw.Shape;
        if (s.H % Patch != 0 || s.W % Patch != 0)
            throw new ArgumentException($"latent {s}: the {form.Name()} form takes 2x2 patches, so h and w must be even (the image's sides multiples of 16)");
        var tokens = FluxLatentPacking.Pack(raw);
        Normalise(tokens, n, forward: true);
        return form == LatentForm.Packed ? tokens : Transpose(tokens, s.H / Patch, s.W / Patch);
    }

    /// <summary>
    /// The raw shape a decode's latents stand for, recognising the form from the shape; checked without touching
    /// the data, so a plan or a server can refuse what the call would.
    /// </summary>
    /// <param name="forms">the model's (<see cref="Supported(LatentNormalization?)"/>): packed among them means normalised tokens
    /// of 4 x <paramref name="latentChannels"/> features; without it, packed latents are FLUX.1's raw ones.</param>
    /// <exception cref="ArgumentException">packed latents without height and width, or a shape no form of this model has.</exception>
    public static TensorShape RawShape(TensorShape given, DecodeOptions options, int latentChannels, int downsampleFactor,
        IReadOnlyList<LatentForm> forms, string family, bool frameAxis)
    {
        if (given.Rank == VideoRank)
        {
            if (!frameAxis)
                throw new ArgumentException($"latents {given}: video latents [B, C, F, h, w] are for video VAEs; {family} takes [N, {latentChannels}, h, w]");
            if (given[2] != 1)
                throw new ArgumentException($"latents {given}: {given[2]} frames; {family} decodes images, one frame [N, {latentChannels}, 1, h, w] (video VAEs are not run yet)");
            return TensorShape.Nchw(given[0], given[1], given[3], given[4]);
        }
        bool normalised = forms.Contains(LatentForm.Packed);
        var form = FormOf(given, latentChannels, forms, family);
        if (form != LatentForm.Raw && normalised) RequireNoFactors(options.ScalingFactor, options.ShiftFactor, "DecodeOptions", form);
        return form switch
        {
            LatentForm.Packed => FluxLatentPacking.UnpackedShape(given, options.Height, options.Width, downsampleFactor),
            LatentForm.Patchified => TensorShape.Nchw(given.N, given.C / PatchArea, given.H * Patch, given.W * Patch),
            _ => given,
        };
    }

    /// <summary>The raw latent <c>[N, C, h, w]</c> that <paramref name="latents"/> stand for (see <see cref="RawShape"/>).</summary>
    public static HostTensor<float> ToRaw(HostTensor<float> latents, DecodeOptions options, int latentChannels, int downsampleFactor,
        LatentNormalization? normalization, string family, bool frameAxis)
    {
        var given = latents.Shape;
        var raw = RawShape(given, options, latentChannels, downsampleFactor, Supported(normalization), family, frameAxis);
        if (raw == given) return latents;
        if (given.Rank == VideoRank) return new HostTensor<float>(raw, latents.Data);
        HostTensor<float> tokens;
        if (given.Rank == PackedRank)
        {
            if (normalization is null) return FluxLatentPacking.Unpack(latents, raw);
            tokens = new HostTensor<float>(given, (float[])latents.Data.Clone());
        }
        else
        {
            tokens = Transpose(latents);
        }
        Normalise(tokens, normalization!, forward: false);
        return FluxLatentPacking.Unpack(tokens, raw);
    }

    private static LatentForm FormOf(TensorShape given, int latentChannels, IReadOnlyList<LatentForm> forms, string family)
    {
        bool normalised = forms.Contains(LatentForm.Packed);
        int features = PatchArea * latentChannels;
        if (given.Rank == PackedRank)
        {
            if (normalised && given[2] != features)
                throw new ArgumentException($"packed latents {given}: {family}'s tokens have {features} features, [N, seq, {features}]");
            return LatentForm.Packed;
        }
        if (given.Rank == ImageRank && given.C != latentChannels && given.C == features)
        {
            if (normalised && !forms.Contains(LatentForm.Patchified))
                throw new ArgumentException(
                    $"latents {given}: {given.C} channels is 2x2-patchified {latentChannels}-channel latents, a form {family}'s pipeline has not; " +
                    $"it decodes raw [N, {latentChannels}, 1, h, w] latents, or packed tokens [N, seq, {given.C}] with height and width");
            if (!normalised)
                throw new ArgumentException(
                    $"latents {given}: {given.C} channels is 2x2-patchified {latentChannels}-channel latents (FLUX.2's pipeline form), which need FLUX.2's batch-norm statistics; " +
                    $"{family} decodes raw [N, {latentChannels}, h, w] latents (unpatchify and denormalise them first, or load the FLUX.2 VAE)");
            return LatentForm.Patchified;
        }
        return LatentForm.Raw;
    }

    private static void RequireNoFactors(float? scale, float? shift, string what, LatentForm form)
    {
        if (scale is not null || shift is not null)
            throw new ArgumentException(
                $"{what}.{(scale is not null ? "ScalingFactor" : "ShiftFactor")}: {form.Name()} latents are normalised with the model's own statistics; scaling and shift factors apply to raw latents only");
    }

    /// <summary>Per feature of tokens <c>[N, seq, F]</c>: <c>(x - mean) / std</c>, or back.</summary>
    private static void Normalise(HostTensor<float> tokens, LatentNormalization n, bool forward)
    {
        int features = tokens.Shape[2];
        var data = tokens.Data;
        for (long i = 0; i < data.LongLength; i++)
        {
            int k = (int)(i % features);
            data[i] = forward ? (data[i] - n.Mean[k]) / n.Std[k] : data[i] * n.Std[k] + n.Mean[k];
        }
    }

    /// <summary>Tokens <c>[N, h*w, F]</c> to channels <c>[N, F, h, w]</c>.</summary>
    private static HostTensor<float> Transpose(HostTensor<float> tokens, int h, int w) =>
        new(TensorShape.Nchw(tokens.Shape[0], tokens.Shape[2], h, w), SwapLastTwo(tokens.Data, tokens.Shape[0], tokens.Shape[1], tokens.Shape[2]));

    /// <summary>Channels <c>[N, F, h, w]</c> to tokens <c>[N, h*w, F]</c>.</summary>
    private static HostTensor<float> Transpose(HostTensor<float> channels)
    {
        var s = channels.Shape;
        return new(new TensorShape(s.N, s.H * s.W, s.C), SwapLastTwo(channels.Data, s.N, s.C, s.H * s.W));
    }

    /// <summary><c>[N, A, B]</c> to <c>[N, B, A]</c>.</summary>
    private static float[] SwapLastTwo(float[] data, int n, int a, int b)
    {
        var result = new float[data.LongLength];
        for (int batch = 0; batch < n; batch++)
        for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++)
            result[((long)batch * b + j) * a + i] = data[((long)batch * a + i) * b + j];
        return result;
    }
}

namespace NativeVae.Models.Taesd;

/// <summary>
/// Every parameter of a tiny autoencoder under diffusers' <c>AutoencoderTiny</c> names:
/// <c>encoder.layers.{i}</c> (the index in taesd.py's encoder <c>nn.Sequential</c>) and
/// <c>decoder.layers.{i}</c> (taesd.py's decoder index minus one: diffusers applies the Clamp outside its
/// Sequential). Layer indices, in order, are also what <see cref="TaesdEncoder"/> and <see cref="TaesdDecoder"/> walk.
/// </summary>
internal static class TaesdParameters
{
    public const string EncoderPrefix = "encoder.layers.";
    public const string DecoderPrefix = "decoder.layers.";
    private const int ConvKernel = 3;

    public static List<(string Name, TensorShape Shape)> Enumerate(TaesdConfig config)
    {
        config.Validate();
        var list = new List<(string, TensorShape)>();
        foreach (var layer in EncoderLayers(config)) AddLayer(list, EncoderPrefix, layer, config);
        foreach (var layer in DecoderLayers(config)) AddLayer(list, DecoderPrefix, layer, config);
        return list;
    }

    /// <summary>
    /// The declared parameters of the halves <paramref name="has"/> holds: a half is there when its first conv is (a
    /// decoder-only checkpoint is common). With neither first conv, both halves are declared, so that the check of
    /// the parameters (<see cref="NativeVae.Core.ParameterCheck"/>) names what is missing.
    /// </summary>
    public static List<(string Name, TensorShape Shape)> OfHalvesPresent(TaesdConfig config, Func<string, bool> has,
        out bool hasEncoder, out bool hasDecoder)
    {
        hasEncoder = has(EncoderPrefix + "0.weight");
        hasDecoder = has(DecoderPrefix + "0.weight");
        if (!hasEncoder && !hasDecoder) hasEncoder = hasDecoder = true;
        bool encoder = hasEncoder, decoder = hasDecoder;
        return Enumerate(config).Where(p => p.Name.StartsWith(EncoderPrefix, StringComparison.Ordinal) ? encoder : decoder).ToList();
    }

    /// <summary>One entry of a tiny autoencoder's Sequential.</summary>
    internal enum LayerKind { ConvIn, ConvDown, Block, ConvUp, ConvOut, Relu, Upsample }

    internal readonly record struct Layer(int Index, LayerKind Kind, int InChannels, int OutChannels, bool GroupNorm);

    /// <summary>taesd.py's encoder: conv_in, blocks, then per stage a stride-2 conv and blocks, then conv_out.</summary>
    public static List<Layer> EncoderLayers(TaesdConfig config)
    {
        var layers = new List<Layer>();
        int c = config.Channels;
        int lastStage = config.EncoderBlocks.Count - 1;
        for (int stage = 0; stage <= lastStage; stage++)
        {
            layers.Add(stage == 0
                ? new Layer(layers.Count, LayerKind.ConvIn, TaesdConfig.ImageChannels, c, false)
                : new Layer(layers.Count, LayerKind.ConvDown, c, c, false));
            for (int b = 0; b < config.EncoderBlocks[stage]; b++)
                layers.Add(new Layer(layers.Count, LayerKind.Block, c, c, config.UseMidBlockGroupNorm && stage == lastStage));
        }
        layers.Add(new Layer(layers.Count, LayerKind.ConvOut, c, config.LatentChannels, false));
        return layers;
    }

    /// <summary>diffusers' decoder (Clamp applied before it): conv_in, ReLU, per stage blocks then upsample + conv.</summary>
    public static List<Layer> DecoderLayers(TaesdConfig config)
    {
        var layers = new List<Layer>();
        int c = config.Channels;
        int lastStage = config.DecoderBlocks.Count - 1;
        layers.Add(new Layer(layers.Count, LayerKind.ConvIn, config.LatentChannels, c, false));
        layers.Add(new Layer(layers.Count, LayerKind.Relu, c, c, false));
        for (int stage = 0; stage <= lastStage; stage++)
        {
            for (int b = 0; b < config.DecoderBlocks[stage]; b++)
                layers.Add(new Layer(layers.Count, LayerKind.Block, c, c, config.UseMidBlockGroupNorm && stage == 0));
            if (stage < lastStage)
            {
                layers.Add(new Layer(layers.Count, LayerKind.Upsample, c, c, false));
                layers.Add(new Layer(layers.Count, LayerKind.ConvUp, c, c, false));
            }
        }
        layers.Add(new Layer(layers.Count, LayerKind.ConvOut, c, TaesdConfig.ImageChannels, false));
        return layers;
    }

    private static void AddLayer(List<(string, TensorShape)> list, string prefix, Layer layer, TaesdConfig config)
    {
        string p = prefix + layer.Index;
        switch (layer.Kind)
        {
            case LayerKind.ConvIn:
            case LayerKind.ConvOut:
                list.Add(($"{p}.weight", new TensorShape(layer.OutChannels, layer.InChannels, ConvKernel, ConvKernel)));
                list.Add(($"{p}.bias", new TensorShape(layer.OutChannels)));
                break;
            case LayerKind.ConvDown:
            case LayerKind.ConvUp:
                list.Add(($"{p}.weight", new TensorShape(layer.OutChannels, layer.InChannels, ConvKernel, ConvKernel)));
                break;
            case LayerKind.Block:
                foreach (int conv in TaesdBlock.ConvIndices)
                {
                    int cin = conv == TaesdBlock.ConvIndices[0] ? layer.InChannels : layer.OutChannels;
                    list.Add(($"{p}.conv.{conv}.weight", new TensorShape(layer.OutChannels, cin, ConvKernel, ConvKernel)));
                    list.Add(($"{p}.conv.{conv}.bias", new TensorShape(layer.OutChannels)));
                }
                if (layer.GroupNorm)
                {
                    int wide = layer.InChannels * TaesdConfig.GroupNormWidening;
                    list.Add(($"{p}.pool.0.weight", new TensorShape(wide, layer.InChannels, 1, 1)));
                    list.Add(($"{p}.pool.1.weight", new TensorShape(wide)));
                    list.Add(($"{p}.pool.1.bias", new TensorShape(wide)));
                    list.Add(($"{p}.pool.3.weight", new TensorShape(layer.InChannels, wide, 1, 1)));
                }
                if (layer.InChannels != layer.OutChannels)
                    list.Add(($"{p}.skip.weight", new TensorShape(layer.OutChannels, layer.InChannels, 1, 1)));
                break;
        }
    }
}

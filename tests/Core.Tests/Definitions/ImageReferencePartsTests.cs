using Pipelines.Core.Definitions;

namespace Pipelines.Core.Tests.Definitions;

public sealed class ImageReferencePartsTests
{
    private const string Digest = "sha256:2f7d0c6b3a1e5f4d9c8b7a6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c";

    [Theory]
    [InlineData("alpine", null, "alpine", null, null)]
    [InlineData("alpine:3.20", null, "alpine", "3.20", null)]
    [InlineData("library/alpine:Latest_1", null, "library/alpine", "Latest_1", null)]
    [InlineData("team/app__v2/loader-x.y", null, "team/app__v2/loader-x.y", null, null)]
    [InlineData("a---b", null, "a---b", null, null)]
    [InlineData("localhost/app", "localhost", "app", null, null)]
    [InlineData("localhost:5000/app:1", "localhost:5000", "app", "1", null)]
    [InlineData("MyRegistry.io/team/app", "MyRegistry.io", "team/app", null, null)]
    [InlineData("[::1]:5000/app", "[::1]:5000", "app", null, null)]
    [InlineData("registry.example.com/team/app@" + Digest, "registry.example.com", "team/app", null, Digest)]
    [InlineData("app:1.0@" + Digest, null, "app", "1.0", Digest)]
    public void valid_reference_is_taken_apart_as_docker_does(string reference, string? registry, string repository, string? tag, string? digest)
    {
        Assert.True(ImageReferenceParts.TryParse(reference, out var parts, out var problem), problem);

        Assert.Equal(new ImageReferenceParts(registry, repository, tag, digest), parts);
        Assert.Equal(reference, parts.ToString());
    }

    [Theory]
    [InlineData("", "it is empty")]
    [InlineData("alpine 3", "it contains whitespace")]
    [InlineData("Alpine", "repository path 'Alpine' must be lowercase")]
    [InlineData("MyRegistry.io/Team/App", "repository path 'Team/App' must be lowercase")]
    [InlineData("team/app_", "path component 'app_' must be lowercase letters and digits, joined by '.', '_', '__' or '-'")]
    [InlineData("team/a___b", "path component 'a___b' must be lowercase letters and digits, joined by '.', '_', '__' or '-'")]
    [InlineData("registry.example.com/", "the repository path is empty")]
    [InlineData("-registry.io/app", "registry '-registry.io' must be a host name (letters, digits, '-' and '.') with an optional :PORT")]
    [InlineData("alpine:", "tag '' must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")]
    [InlineData("alpine@sha256:ABC", "digest 'sha256:ABC' must be 'sha256:' followed by 64 lowercase hexadecimal digits")]
    public void invalid_reference_says_what_is_wrong(string reference, string expected)
    {
        Assert.False(ImageReferenceParts.TryParse(reference, out var parts, out var problem));

        Assert.Null(parts);
        Assert.Equal(expected, problem);
    }

    [Fact]
    public void tag_of_129_characters_is_refused_and_of_128_accepted()
    {
        Assert.Null(ImageReferenceParts.TagProblem(new string('a', 128)));
        Assert.NotNull(ImageReferenceParts.TagProblem(new string('a', 129)));
    }

    [Fact]
    public void name_longer_than_255_characters_is_refused()
    {
        var name = "team/" + new string('a', 251);

        Assert.False(ImageReferenceParts.TryParse(name, out _, out var problem));
        Assert.Equal("the name is 256 characters long; Docker allows at most 255", problem);
    }
}

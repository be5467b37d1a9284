<?xml version="1.0" encoding="UTF-8"?>
<!--
  Shows an RSS 2.0 or Atom 1.0 feed of ours as a readable Vietnamese page in browsers
  that still apply XSLT. XSLT 1.0 only (what browsers implement); no
  disable-output-escaping (Firefox ignores it, and it would let feed text become markup):
  every value is written as text, and only http(s) addresses become links.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">

  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:choose>
      <xsl:when test="rss/channel">
        <xsl:call-template name="page">
          <xsl:with-param name="title">
            <xsl:call-template name="unescape"><xsl:with-param name="text" select="rss/channel/title"/></xsl:call-template>
          </xsl:with-param>
          <xsl:with-param name="description">
            <xsl:call-template name="unescape"><xsl:with-param name="text" select="rss/channel/description"/></xsl:call-template>
          </xsl:with-param>
          <xsl:with-param name="home" select="rss/channel/link"/>
          <xsl:with-param name="links" select="rss/channel/atom:link"/>
          <xsl:with-param name="kind" select="'RSS'"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="page">
          <xsl:with-param name="title" select="atom:feed/atom:title"/>
          <xsl:with-param name="description" select="atom:feed/atom:subtitle"/>
          <xsl:with-param name="home" select="atom:feed/atom:link[@rel='alternate']/@href"/>
          <xsl:with-param name="links" select="atom:feed/atom:link"/>
          <xsl:with-param name="kind" select="'Atom'"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template name="page">
    <xsl:param name="title"/>
    <xsl:param name="description"/>
    <xsl:param name="home"/>
    <xsl:param name="links"/>
    <xsl:param name="kind"/>
    <!-- Readers subscribe to the feed, not to one of its older pages. -->
    <xsl:variable name="first" select="$links[@rel='first']/@href"/>
    <xsl:variable name="self" select="$links[@rel='self']/@href"/>
    <xsl:variable name="subscribe" select="$first | $self[not($first)]"/>
    <html lang="vi">
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (nguồn tin <xsl:value-of select="$kind"/>)</title>
        <style>
          body { font-family: system-ui, sans-serif; line-height: 1.5; max-width: 46rem;
                 margin: 0 auto; padding: 1rem; color: #1d1d1f; background: #fff; }
          header { border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
          .about { background: #fff8e1; border: 1px solid #f0d98c; border-radius: .4rem;
                   padding: .75rem 1rem; margin: 1rem 0; }
          .about code { word-break: break-all; background: #fff; padding: 0 .2rem; }
          article { border-bottom: 1px solid #eee; padding: .75rem 0; }
          article h2 { font-size: 1.15rem; margin: 0 0 .25rem; }
          time, .source { color: #666; font-size: .9rem; }
          nav { margin: 1rem 0; display: flex; gap: 1rem; }
          a { color: #0b57d0; }
        </style>
      </head>
      <body>
        <header>
          <h1><xsl:value-of select="$title"/></h1>
          <xsl:if test="string($description)">
            <p><xsl:value-of select="$description"/></p>
          </xsl:if>
        </header>
        <section class="about">
          <p>
            <strong>Đây là nguồn tin (feed) <xsl:value-of select="$kind"/>.</strong>
            Trang này dành cho phần mềm đọc tin, không phải để đọc trực tiếp trên trình duyệt.
            Để theo dõi các bài mới, hãy sao chép địa chỉ dưới đây và dán vào trình đọc tin
            (như Thunderbird, Feedly, Inoreader, NetNewsWire hoặc Miniflux):
          </p>
          <p><code><xsl:value-of select="$subscribe"/></code></p>
          <xsl:if test="starts-with($home, 'http://') or starts-with($home, 'https://')">
            <p>Trang chủ: <a href="{$home}"><xsl:value-of select="$home"/></a></p>
          </xsl:if>
        </section>
        <main>
          <xsl:apply-templates select="rss/channel/item | atom:feed/atom:entry"/>
          <xsl:if test="not(rss/channel/item | atom:feed/atom:entry)">
            <p>Chưa có bài nào.</p>
          </xsl:if>
        </main>
        <nav>
          <xsl:call-template name="page-link">
            <xsl:with-param name="href" select="$links[@rel='previous']/@href"/>
            <xsl:with-param name="label">← Trang mới hơn</xsl:with-param>
          </xsl:call-template>
          <xsl:call-template name="page-link">
            <xsl:with-param name="href" select="$links[@rel='next']/@href"/>
            <xsl:with-param name="label">Trang cũ hơn →</xsl:with-param>
          </xsl:call-template>
        </nav>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <article>
      <h2>
        <xsl:call-template name="title-link">
          <xsl:with-param name="title">
            <xsl:call-template name="unescape"><xsl:with-param name="text" select="title"/></xsl:call-template>
          </xsl:with-param>
          <xsl:with-param name="href" select="link"/>
        </xsl:call-template>
      </h2>
      <p>
        <xsl:if test="pubDate">
          <time><xsl:call-template name="rss-date"><xsl:with-param name="date" select="pubDate"/></xsl:call-template></time>
        </xsl:if>
        <xsl:if test="dc:creator"> · <span class="source"><xsl:call-template name="unescape"><xsl:with-param name="text" select="dc:creator"/></xsl:call-template></span></xsl:if>
        <xsl:if test="source"> · <span class="source">Nguồn: <xsl:value-of select="source"/></span></xsl:if>
      </p>
      <xsl:if test="description">
        <!-- RSS descriptions (and titles that could be misread as HTML) are plain text
             escaped as HTML: undo exactly that escaping, and write the result as text. -->
        <p>
          <xsl:call-template name="unescape"><xsl:with-param name="text" select="description"/></xsl:call-template>
        </p>
      </xsl:if>
    </article>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <h2>
        <xsl:call-template name="title-link">
          <xsl:with-param name="title" select="atom:title"/>
          <xsl:with-param name="href" select="atom:link[@rel='alternate' or not(@rel)][1]/@href"/>
        </xsl:call-template>
      </h2>
      <p>
        <time>
          <xsl:call-template name="atom-date">
            <xsl:with-param name="date" select="atom:published | atom:updated[not(../atom:published)]"/>
          </xsl:call-template>
        </time>
        <xsl:if test="atom:author/atom:name"> · <span class="source"><xsl:value-of select="atom:author/atom:name"/></span></xsl:if>
        <xsl:if test="atom:source/atom:title"> · <span class="source">Nguồn: <xsl:value-of select="atom:source/atom:title"/></span></xsl:if>
      </p>
      <xsl:if test="atom:summary">
        <p><xsl:value-of select="atom:summary"/></p>
      </xsl:if>
    </article>
  </xsl:template>

  <xsl:template name="title-link">
    <xsl:param name="title"/>
    <xsl:param name="href"/>
    <xsl:choose>
      <xsl:when test="starts-with($href, 'http://') or starts-with($href, 'https://')">
        <a href="{$href}"><xsl:value-of select="$title"/></a>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$title"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template name="page-link">
    <xsl:param name="href"/>
    <xsl:param name="label"/>
    <xsl:if test="starts-with($href, 'http://') or starts-with($href, 'https://')">
      <a href="{$href}"><xsl:value-of select="$label"/></a>
    </xsl:if>
  </xsl:template>

  <!-- "Wed, 01 May 2024 08:30:00 +0000" -> "01/05/2024 08:30 (UTC)" -->
  <xsl:template name="rss-date">
    <xsl:param name="date"/>
    <xsl:variable name="rest" select="normalize-space(substring-after($date, ','))"/>
    <xsl:variable name="month" select="substring($rest, 4, 3)"/>
    <xsl:variable name="number"
        select="string-length(substring-before('JanFebMarAprMayJunJulAugSepOctNovDec', $month)) div 3 + 1"/>
    <xsl:choose>
      <xsl:when test="string-length($month) = 3 and contains('JanFebMarAprMayJunJulAugSepOctNovDec', $month)">
        <xsl:value-of select="concat(substring($rest, 1, 2), '/', format-number($number, '00'), '/',
                                     substring($rest, 8, 4), ' ', substring($rest, 13, 5), ' (UTC)')"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$date"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- "2024-05-01T08:30:00+00:00" -> "01/05/2024 08:30 (UTC)" -->
  <xsl:template name="atom-date">
    <xsl:param name="date"/>
    <xsl:value-of select="concat(substring($date, 9, 2), '/', substring($date, 6, 2), '/',
                                 substring($date, 1, 4), ' ', substring($date, 12, 5), ' (UTC)')"/>
  </xsl:template>

  <!-- Undo Python's html.escape(text, quote=False): "&lt;" and "&gt;" first, "&amp;" last. -->
  <xsl:template name="unescape">
    <xsl:param name="text"/>
    <xsl:call-template name="replace">
      <xsl:with-param name="text">
        <xsl:call-template name="replace">
          <xsl:with-param name="text">
            <xsl:call-template name="replace">
              <xsl:with-param name="text" select="$text"/>
              <xsl:with-param name="from" select="'&amp;lt;'"/>
              <xsl:with-param name="to" select="'&lt;'"/>
            </xsl:call-template>
          </xsl:with-param>
          <xsl:with-param name="from" select="'&amp;gt;'"/>
          <xsl:with-param name="to" select="'&gt;'"/>
        </xsl:call-template>
      </xsl:with-param>
      <xsl:with-param name="from" select="'&amp;amp;'"/>
      <xsl:with-param name="to" select="'&amp;'"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template name="replace">
    <xsl:param name="text"/>
    <xsl:param name="from"/>
    <xsl:param name="to"/>
    <xsl:choose>
      <xsl:when test="contains($text, $from)">
        <xsl:value-of select="substring-before($text, $from)"/>
        <xsl:value-of select="$to"/>
        <xsl:call-template name="replace">
          <xsl:with-param name="text" select="substring-after($text, $from)"/>
          <xsl:with-param name="from" select="$from"/>
          <xsl:with-param name="to" select="$to"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$text"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
